"""A local HTTP server standing in for Slack's Web API: records every call, keeps posted messages.

Point `Settings.slack_api_url` (env `FLOWDECK_SLACK_API_URL`) at `server.api_url`. Methods:
`chat.postMessage` (answers ok + channel id + ts), `chat.update`, `chat.postEphemeral`,
`users.info` (from `users`), `auth.test`; `POST /response/<id>` stands in for a `response_url`.
A call with another token than `token` answers `invalid_auth`, as Slack does.
"""

from __future__ import annotations

import itertools
import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import parse_qsl, urlsplit


@dataclass
class SlackCall:
    """One request as Slack would have received it."""

    method: str  # the Web API method ("chat.postMessage") or "response_url"
    token: str | None
    body: dict[str, Any]
    path: str


@dataclass
class FakeSlack:
    """`with FakeSlack(token=...) as slack:` -> slack.api_url, slack.calls, slack.messages."""

    token: str = "xoxb-test-token"
    users: dict[str, str] = field(default_factory=dict)  # Slack user id -> profile e-mail
    channels: dict[str, str] = field(default_factory=dict)  # "#name" -> channel id
    calls: list[SlackCall] = field(default_factory=list)
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)  # (channel, ts) -> message

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._ts = itertools.count(1)
        self._server: ThreadingHTTPServer | None = None

    # -- what tests read ---------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        assert self._server is not None, "the fake Slack is not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def api_url(self) -> str:
        return f"{self.base_url}/api/"

    def response_url(self, name: str = "r1") -> str:
        return f"{self.base_url}/response/{name}"

    def calls_of(self, method: str) -> list[SlackCall]:
        with self._lock:
            return [call for call in self.calls if call.method == method]

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> FakeSlack:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                fake._answer(self)

            def do_POST(self) -> None:
                fake._answer(self)

            def log_message(self, format: str, *args: Any) -> None:
                pass  # the test output stays readable

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True, name="fake-slack").start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeSlack:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # -- the API -----------------------------------------------------------------------------
    def _answer(self, request: BaseHTTPRequestHandler) -> None:
        url = urlsplit(request.path)
        length = int(request.headers.get("Content-Length") or 0)
        raw = request.rfile.read(length).decode() if length else ""
        if (request.headers.get("Content-Type") or "").startswith("application/json"):
            body: dict[str, Any] = json.loads(raw or "{}")
        else:
            body = dict(parse_qsl(raw)) | dict(parse_qsl(url.query))
        auth = request.headers.get("Authorization") or ""
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else body.get("token")
        method = "response_url" if url.path.startswith("/response/") else url.path.removeprefix("/api/")
        with self._lock:
            self.calls.append(SlackCall(method, token, body, url.path))
            answer = self._handle(method, token, body)
        payload = json.dumps(answer).encode()
        request.send_response(200)
        request.send_header("Content-Type", "application/json; charset=utf-8")
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        request.wfile.write(payload)

    def _handle(self, method: str, token: str | None, body: dict[str, Any]) -> dict[str, Any]:
        if method == "response_url":
            return {"ok": True}
        if token != self.token:
            return {"ok": False, "error": "invalid_auth" if token else "not_authed"}
        if method == "auth.test":
            return {"ok": True, "user_id": "UFLOWDECK", "team": "Acme"}
        if method == "chat.postMessage":
            channel = self._channel_id(str(body.get("channel", "")))
            ts = f"1700000000.{next(self._ts):06d}"
            message = {"ts": ts, "text": body.get("text"), "blocks": body.get("blocks"), "updates": 0}
            self.messages[(channel, ts)] = message
            return {"ok": True, "channel": channel, "ts": ts, "message": message}
        if method == "chat.update":
            key = (str(body.get("channel")), str(body.get("ts")))
            if key not in self.messages:
                return {"ok": False, "error": "message_not_found"}
            message = self.messages[key]
            message.update(text=body.get("text"), blocks=body.get("blocks"), updates=message["updates"] + 1)
            return {"ok": True, "channel": key[0], "ts": key[1], "text": body.get("text")}
        if method == "chat.postEphemeral":
            return {"ok": True, "message_ts": "1700000000.999999"}
        if method == "users.info":
            user = str(body.get("user", ""))
            if user not in self.users:
                return {"ok": False, "error": "user_not_found"}
            return {"ok": True, "user": {"id": user, "profile": {"email": self.users[user]}}}
        return {"ok": False, "error": "unknown_method"}

    def _channel_id(self, channel: str) -> str:
        """Slack answers with the channel's id, whatever name was posted to."""
        if not channel.startswith("#"):
            return channel
        return self.channels.setdefault(channel, f"C{len(self.channels) + 1:08d}")
