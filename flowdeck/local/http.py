"""The local HTTP server on 127.0.0.1:8765: each request becomes an API Gateway REST event for the handler.

Bodies over MAX_REQUEST_BODY_BYTES (1 MiB) are refused with 413 before the handler runs. API Gateway's own
limit is 10 MB; ours is lower on purpose (run inputs are small) and the Lambda handler applies it on AWS too.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Match, Route
from starlette.types import Scope

from flowdeck.constants import LOCAL_API_HOST, LOCAL_API_PORT, MAX_REQUEST_BODY_BYTES
from flowdeck.local.metering import METER

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
LOCAL_ACCOUNT = "123456789012"
LOCAL_STAGE = "local"
LOCAL_FUNCTION = "flowdeck-api-local"
# API Gateway gives up on an integration after 29 s; the handler sees the same budget.
HANDLER_BUDGET_MS = 29_000
HANDLER_THREADS = 16
# Powertools' resolver keeps the request being resolved in class attributes (BaseRouter.current_event),
# so one process resolves one request at a time, as one Lambda instance does; parallel requests
# otherwise read each other's event (another caller's identity, a query they never sent: 422s, 500s).
HANDLER_LOCK = threading.Lock()

logger = logging.getLogger(__name__)


class PortInUse(RuntimeError):
    """The API port is taken, most often by another `flowdeck up`."""


@dataclass
class LocalLambdaContext:
    """The Lambda context attributes handlers and powertools read, for handlers run in this process."""

    aws_request_id: str
    function_name: str = LOCAL_FUNCTION
    function_version: str = "$LATEST"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = f"arn:aws:lambda:us-east-1:{LOCAL_ACCOUNT}:function:{LOCAL_FUNCTION}"
    log_group_name: str = f"/aws/lambda/{LOCAL_FUNCTION}"
    log_stream_name: str = "local"
    deadline: float = field(default_factory=lambda: time.monotonic() + HANDLER_BUDGET_MS / 1000)

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self.deadline - time.monotonic()) * 1000))


def api_gateway_event(
    method: str,
    path: str,
    query_string: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    source_ip: str,
    request_id: str,
) -> dict[str, Any]:
    """One HTTP request as an API Gateway REST (v1) proxy event on a `/{proxy+}` resource."""
    multi_headers: dict[str, list[str]] = {}
    for name, value in headers:
        multi_headers.setdefault(name, []).append(value)
    multi_query: dict[str, list[str]] = {}
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        multi_query.setdefault(name, []).append(value)
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    # API Gateway keeps the last value of a repeated header or parameter in the single-value maps.
    return {
        "resource": "/{proxy+}",
        "path": path,
        "httpMethod": method,
        "headers": {k: v[-1] for k, v in multi_headers.items()} or None,
        "multiValueHeaders": multi_headers or None,
        "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
        "multiValueQueryStringParameters": multi_query or None,
        "pathParameters": {"proxy": path.lstrip("/")} if path != "/" else None,
        "stageVariables": None,
        "requestContext": {
            "accountId": LOCAL_ACCOUNT,
            "apiId": "local",
            "resourceId": "proxy",
            "resourcePath": "/{proxy+}",
            "stage": LOCAL_STAGE,
            "requestId": request_id,
            "requestTimeEpoch": int(time.time() * 1000),
            "protocol": "HTTP/1.1",
            "httpMethod": method,
            "path": path,
            "identity": {
                "sourceIp": source_ip,
                "userAgent": multi_headers.get("user-agent", [None])[-1],
                "userArn": None,
                "caller": None,
                "accountId": None,
                "user": None,
            },
        },
        "body": text if body else None,
        "isBase64Encoded": encoded,
    }


def http_response(answer: dict[str, Any]) -> Response:
    """A Lambda proxy answer (statusCode, headers, multiValueHeaders, body, isBase64Encoded) as HTTP."""
    body = answer.get("body") or ""
    content = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode("utf-8")
    merged: dict[str, list[str]] = {k.lower(): [str(v)] for k, v in (answer.get("headers") or {}).items()}
    for name, values in (answer.get("multiValueHeaders") or {}).items():
        merged[name.lower()] = [str(v) for v in values]
    merged.pop("content-length", None)
    response = Response(content=content, status_code=int(answer["statusCode"]))
    response.raw_headers = [(b"content-length", str(len(content)).encode())] + [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, values in merged.items()
        for value in values
    ]
    return response


def error(status: int, code: str, message: str) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status)


def too_large() -> JSONResponse:
    return error(413, "PayloadTooLarge", f"request body is over {MAX_REQUEST_BODY_BYTES} bytes")


async def read_body(request: Request) -> bytes | None:
    """The request body, or None as soon as it is known to be over the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_REQUEST_BODY_BYTES:
        return None
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_REQUEST_BODY_BYTES:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


class ProxyRoute(Route):
    """API Gateway's greedy `/{proxy+}` resource: every path goes to the handler, a newline in it too
    (Starlette's `{path:path}` stops at one, and its router answered a plain-text `Not Found`)."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if scope["type"] != "http":
            return Match.NONE, {}
        child_scope = {"endpoint": self.endpoint, "path_params": {"path": scope["path"]}}
        return (Match.FULL if scope["method"] in (self.methods or ()) else Match.PARTIAL), child_scope


class ApiServer:
    """uvicorn in a background thread, serving `handler` as API Gateway would; `with ApiServer(h): ...`."""

    def __init__(
        self,
        handler: Handler,
        host: str = LOCAL_API_HOST,
        port: int = LOCAL_API_PORT,
        routes: Sequence[BaseRoute] = (),
    ) -> None:
        """`routes` are matched before the API proxy (the dashboard, the `/ws` WebSocket endpoint)."""
        self.handler = handler
        self.host = host
        self.port = port
        self.routes = list(routes)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._pool: ThreadPoolExecutor | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def app(self) -> Starlette:
        """The ASGI app: extra routes first, then every other path to the handler."""
        # SPEC §4's WebSocket endpoint (ws://127.0.0.1:8765/ws) goes in `routes`: WebSocketRoute("/ws", ...).
        return Starlette(routes=[*self.routes, ProxyRoute("/{path:path}", self._proxy, methods=METHODS)])

    async def _proxy(self, request: Request) -> Response:
        body = await read_body(request)
        if body is None:
            return too_large()
        request_id = str(uuid.uuid4())
        event = api_gateway_event(
            method=request.method,
            # Decoded as API Gateway passes it (request.url.path re-escapes `?`, `#`, `\` and drops newlines).
            path=request.scope["path"],
            query_string=request.url.query,
            headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.scope["headers"]],
            body=body,
            source_ip=request.client.host if request.client else LOCAL_API_HOST,
            request_id=request_id,
        )
        # The handler does blocking boto3 I/O: run it off the event loop.
        loop = asyncio.get_running_loop()
        answer = await loop.run_in_executor(self._pool, self._invoke, event, request_id)
        return http_response(answer)

    def _invoke(self, event: dict[str, Any], request_id: str) -> dict[str, Any]:
        try:
            METER.add(f"api.{event['httpMethod']} /{event['path'].strip('/').split('/')[0]}")  # per route
            context = LocalLambdaContext(aws_request_id=request_id)
            with HANDLER_LOCK:
                answer = METER.invoke("api", self.handler, event, context)
            if not isinstance(answer, dict) or "statusCode" not in answer:
                raise TypeError("the handler's answer is not a Lambda proxy response")
            return answer
        except Exception:
            # API Gateway answers a failed integration with a bare 5xx; keep ours in the SPEC's error shape.
            logger.exception("API handler failed for %s %s", event["httpMethod"], event["path"])
            return {
                "statusCode": 500,
                "headers": {"Content-Type": "application/json"},
                "body": '{"error": "InternalError", "message": "internal error"}',
            }

    def start(self) -> None:
        """Listen on host:port (port 0 picks a free one) and return once the server accepts connections."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self.host, self.port))
        except OSError as exc:
            sock.close()
            raise PortInUse(
                f"cannot listen on {self.host}:{self.port}: {exc.strerror or exc} "
                "(is another `flowdeck up` running? choose another port with --port)"
            ) from None
        self.port = sock.getsockname()[1]
        # log_config=None: leave the process's logging alone (uvicorn would install its own handlers).
        config = uvicorn.Config(
            self.app(), log_config=None, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._pool = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="flowdeck-api")
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="flowdeck-http", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the local API server did not start on {self.url}")
            time.sleep(0.01)

    def stop(self) -> None:
        """Stop accepting requests, let running ones finish briefly, release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
        self._server = self._thread = self._pool = None

    def __enter__(self) -> ApiServer:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
