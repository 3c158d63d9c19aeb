"""The CLI signs requests to API Gateway (IAM auth on AWS) and nothing else (the local stack)."""

from __future__ import annotations

import re

import httpx
import pytest

from flowdeck.cli.client import ApiClient
from flowdeck.cli.sigv4 import region_of, signed_headers

AWS_API = "https://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod"
SCOPE = re.compile(r"^AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/\d{8}/eu-west-1/execute-api/aws4_request, ")


@pytest.fixture(autouse=True)
def credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "example-secret")
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@pytest.mark.parametrize(
    ("url", "region"),
    [
        (AWS_API, "eu-west-1"),
        ("wss://xyz987.execute-api.us-east-1.amazonaws.com/prod", "us-east-1"),
        ("http://127.0.0.1:8765", None),
        ("https://example.com/execute-api.eu-west-1.amazonaws.com", None),
    ],
)
def test_only_api_gateway_hosts_have_a_region(url: str, region: str | None) -> None:
    assert region_of(url) == region


def sent_through(base_url: str, params: dict[str, str] | None = None) -> httpx.Request:
    seen: list[httpx.Request] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(202, json={"run_id": "r1"})

    with ApiClient(base_url, user="jane", transport=httpx.MockTransport(answer)) as client:
        client.request("POST", "/workflows/hello/runs", params=params, body={"inputs": {"who": "x"}})
    return seen[0]


def test_requests_to_api_gateway_are_signed_for_execute_api() -> None:
    request = sent_through(AWS_API)

    assert SCOPE.match(request.headers["authorization"])
    assert "SignedHeaders=content-type;host;x-amz-date" in request.headers["authorization"]
    assert re.fullmatch(r"\d{8}T\d{6}Z", request.headers["x-amz-date"])


def test_requests_to_the_local_stack_are_not_signed() -> None:
    request = sent_through("http://127.0.0.1:8765")

    assert "authorization" not in request.headers
    assert "x-amz-date" not in request.headers


def test_websocket_handshake_to_api_gateway_is_signed() -> None:
    headers = signed_headers("GET", "wss://a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com/prod")

    assert SCOPE.match(headers["Authorization"])
    assert "X-Amz-Date" in headers


def test_websocket_handshake_to_the_local_stack_is_not_signed() -> None:
    assert signed_headers("GET", "ws://127.0.0.1:8765/ws") == {}


def test_signature_covers_what_was_sent(monkeypatch: pytest.MonkeyPatch) -> None:
    # Given a frozen clock, re-signing the bytes that went over the wire gives the same signature.
    import datetime

    from botocore import auth
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    frozen = datetime.datetime(2026, 11, 21, 12, 0, 0)
    monkeypatch.setattr(auth, "get_current_datetime", lambda: frozen)
    request = sent_through(AWS_API, params={"q": "disk full", "plus": "a+b"})

    assert request.url.query == b"q=disk%20full&plus=a%2Bb"
    again = AWSRequest(
        method=request.method,
        url=str(request.url),
        data=request.content,
        headers={"host": request.headers["host"], "content-type": request.headers["content-type"]},
    )
    SigV4Auth(Credentials("AKIDEXAMPLE", "example-secret"), "execute-api", "eu-west-1").add_auth(again)
    assert request.headers["authorization"] == again.headers["Authorization"]
    assert request.headers["x-amz-date"] == "20261121T120000Z"
