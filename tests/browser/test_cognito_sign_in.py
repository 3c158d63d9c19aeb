"""The page in "cognito" config mode (as on AWS) against the local stack: sign-in redirect with PKCE, code
exchange, identity-pool credentials, SigV4-signed REST calls and WebSocket handshakes, re-signed on
reconnect. A stand-in HTTP server plays the managed login, token endpoint and identity pool."""

from __future__ import annotations

import base64
import hashlib
import json
import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, WebSocketRoute, expect

from flowdeck.local.stack import LocalStack
from tests.browser.conftest import start_run, wait_for_step

JANE = "jane@example.com"
CLIENT_ID = "dashboard-client"
USER_POOL_ID = "us-east-1_LocalPool"
IDENTITY_POOL_ID = "us-east-1:00000000-0000-4000-8000-000000000001"
# Shorter than the page's 5-minute margin: every signing renews them, so each handshake gets new keys.
CREDENTIALS_SECONDS = 240


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def id_token(email: str) -> str:
    """An id token as Cognito shapes it (the page reads its claims; it is not verified in the browser)."""
    claims = {"sub": "0b5e1f4c-1111-4a2b-9c3d-5e6f7a8b9c0d", "email": email, "exp": int(time.time()) + 3600}
    return ".".join(b64url(json.dumps(part).encode()) for part in ({"alg": "RS256"}, claims)) + ".c2ln"


@dataclass
class CognitoStandIn:
    """What the managed login, the token endpoint and the identity pool were asked."""

    authorize: list[dict[str, str]] = field(default_factory=list)
    token: list[dict[str, str]] = field(default_factory=list)
    identity: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    keys_issued: int = 0
    url: str = ""


def stand_in_handler(state: CognitoStandIn) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(
            self, status: int, body: dict[str, Any] | None, headers: dict[str, str] | None = None
        ) -> None:
            self.send_response(status)
            self.send_header("Access-Control-Allow-Origin", "*")
            self.send_header("Access-Control-Allow-Headers", "Content-Type, X-Amz-Target")
            self.send_header("Access-Control-Allow-Methods", "POST")
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            payload = json.dumps(body).encode() if body is not None else b""
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_OPTIONS(self) -> None:
            self._answer(204, None)

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path != "/oauth2/authorize":
                return self._answer(404, {"error": "NotFound"})
            query = {k: v[0] for k, v in parse_qs(url.query).items()}
            state.authorize.append(query)
            # The managed login signed Jane in: back to the page with a code.
            back = f"{query['redirect_uri']}?{urlencode({'code': 'code-1', 'state': query['state']})}"
            self._answer(302, None, {"Location": back})

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
            if self.path == "/oauth2/token":
                form = {k: v[0] for k, v in parse_qs(body).items()}
                state.token.append(form)
                challenge = state.authorize[-1]["code_challenge"]
                if b64url(hashlib.sha256(form.get("code_verifier", "").encode()).digest()) != challenge:
                    return self._answer(400, {"error": "invalid_grant"})
                return self._answer(
                    200, {"id_token": id_token(JANE), "refresh_token": "refresh-1", "expires_in": 3600}
                )
            target = self.headers.get("X-Amz-Target", "").rsplit(".", 1)[-1]
            state.identity.append((target, json.loads(body)))
            if target == "GetId":
                return self._answer(200, {"IdentityId": "us-east-1:11111111-2222-4333-8444-555555555555"})
            state.keys_issued += 1
            credentials = {
                "AccessKeyId": f"ASIASTANDIN{state.keys_issued:04d}",
                "SecretKey": "stand-in-secret",
                "SessionToken": f"session-{state.keys_issued}",
                "Expiration": int(time.time()) + CREDENTIALS_SECONDS,
            }
            self._answer(200, {"IdentityId": json.loads(body)["IdentityId"], "Credentials": credentials})

    return Handler


@pytest.fixture
def cognito() -> Iterator[CognitoStandIn]:
    state = CognitoStandIn()
    server = ThreadingHTTPServer(("127.0.0.1", 0), stand_in_handler(state))
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def cognito_page(cognito: CognitoStandIn, page: Page, stack: LocalStack) -> Page:
    """The page told (by its config.json, as FlowdeckWebConfig deploys it) to sign in through Cognito.

    The stand-in comes first so that it goes last: a page still open may ask it for fresh credentials,
    and a stand-in already gone would fail that request (a console error at the page's teardown).
    """
    config = {
        "mode": "cognito",
        "apiUrl": stack.api_url,
        "websocketUrl": re.sub(r"^http", "ws", stack.api_url) + "/ws",
        "region": "us-east-1",
        "userPoolId": USER_POOL_ID,
        "clientId": CLIENT_ID,
        "identityPoolId": IDENTITY_POOL_ID,
        "cognitoDomain": cognito.url,
        "identityEndpoint": f"{cognito.url}/",
    }

    def serve_config(route: Route) -> None:
        route.fulfill(status=200, content_type="application/json", body=json.dumps(config))

    page.route("**/config.json", serve_config)
    return page


def test_sign_in_with_pkce_then_every_rest_call_is_signed(
    cognito_page: Page, cognito: CognitoStandIn, dashboard_url: str
) -> None:
    sent: list[Request] = []
    cognito_page.on("request", lambda request: sent.append(request) if "/runs" in request.url else None)

    cognito_page.goto(f"{dashboard_url}#/runs")

    expect(cognito_page.get_by_text(f"Signed in as {JANE}")).to_be_visible()
    expect(cognito_page.get_by_role("heading", name="Runs")).to_be_visible()
    # The history answered (signed GET /runs reached the local stack's API).
    expect(cognito_page.get_by_role("table", name="Run history")).to_have_attribute("aria-busy", "false")
    [asked] = cognito.authorize
    assert (asked["response_type"], asked["client_id"], asked["code_challenge_method"]) == (
        "code",
        CLIENT_ID,
        "S256",
    )
    assert asked["redirect_uri"] == f"{dashboard_url.rstrip('/')}/"
    [exchange] = cognito.token
    assert exchange["grant_type"] == "authorization_code" and exchange["code"] == "code-1"
    assert exchange["redirect_uri"] == asked["redirect_uri"]  # and its verifier matched the challenge
    get_id = next(body for target, body in cognito.identity if target == "GetId")
    assert get_id["IdentityPoolId"] == IDENTITY_POOL_ID
    assert list(get_id["Logins"]) == [f"cognito-idp.us-east-1.amazonaws.com/{USER_POOL_ID}"]
    # The code left the address bar; the view asked for stayed.
    assert "code=" not in cognito_page.url and cognito_page.url.endswith("#/runs")
    api_calls = [r for r in sent if r.url.startswith(f"{dashboard_url.rstrip('/')}/runs")]
    assert api_calls
    for request in api_calls:
        headers = request.all_headers()
        assert headers["authorization"].startswith("AWS4-HMAC-SHA256 Credential=ASIASTANDIN"), headers
        assert "/us-east-1/execute-api/aws4_request" in headers["authorization"]
        assert headers["x-amz-security-token"].startswith("session-")
        assert "x-flowdeck-user" not in headers


def test_websocket_handshake_is_signed_and_re_signed_on_reconnect(
    cognito_page: Page, cognito: CognitoStandIn, dashboard_url: str, api: httpx.Client
) -> None:
    run_id = start_run(api, "run-story")
    handshakes: list[str] = []

    def drop_the_first(ws: WebSocketRoute) -> None:
        handshakes.append(ws.url)
        if len(handshakes) == 1:
            ws.close()  # a dropped connection: the page must sign a new handshake
        else:
            ws.connect_to_server()

    cognito_page.route_web_socket(re.compile(r"/ws\?"), drop_the_first)

    cognito_page.goto(f"{dashboard_url}#/runs/{run_id}")

    expect(cognito_page.get_by_text(f"Signed in as {JANE}")).to_be_visible()
    deadline = time.monotonic() + 20
    while len(handshakes) < 2 and time.monotonic() < deadline:
        cognito_page.wait_for_timeout(100)
    assert len(handshakes) >= 2, handshakes
    signed = [parse_qs(urlsplit(url).query) for url in handshakes[:2]]
    for query in signed:
        assert query["X-Amz-Algorithm"] == ["AWS4-HMAC-SHA256"]
        assert query["X-Amz-Signature"][0]
        assert query["X-Amz-Security-Token"][0].startswith("session-")
        assert "user" not in query
    # Fresh credentials, a fresh signature: the reconnect did not reuse the first URL.
    assert signed[0]["X-Amz-Credential"] != signed[1]["X-Amz-Credential"]
    assert signed[0]["X-Amz-Signature"] != signed[1]["X-Amz-Signature"]


def test_artifact_download_asks_for_the_link_and_sends_no_signature_to_s3(
    cognito_page: Page, dashboard_url: str, api: httpx.Client
) -> None:
    run_id = start_run(api, "run-story")
    wait_for_step(api, run_id, "approval", "waiting")  # build, with its report, is done
    sent: list[Request] = []
    cognito_page.on("request", lambda request: sent.append(request) if "report.txt" in request.url else None)
    cognito_page.goto(f"{dashboard_url}#/runs/{run_id}")
    cognito_page.get_by_role("tab", name="Artifacts").click()
    row = cognito_page.locator("[data-artifact='build/report.txt']")

    with cognito_page.expect_download() as download:
        row.get_by_role("link", name="Download report.txt").click()

    assert Path(download.value.path()).read_text() == "all 200 checks passed\n"
    [ask, *fetched] = sent
    assert ask.url.endswith("/artifacts/build/report.txt?link=true")
    assert ask.all_headers()["authorization"].startswith("AWS4-HMAC-SHA256 ")
    assert fetched, "the presigned URL was not opened"
    for request in fetched:
        headers = request.all_headers()
        assert "X-Amz-Signature=" in request.url
        assert "authorization" not in headers and "x-amz-security-token" not in headers
