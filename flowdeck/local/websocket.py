"""The local WebSocket endpoint (`ws://127.0.0.1:8765/ws`) and the `@connections` management API.

Each WebSocket connection gets an id; its connect, messages and close become API Gateway WebSocket
events for the same handler as on AWS. The fan-out handler posts frames back through boto3's
`apigatewaymanagementapi` client pointed at this server, so it runs unchanged on both homes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import secrets
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from flowdeck.constants import USER_HEADER
from flowdeck.local.http import LOCAL_STAGE, LocalLambdaContext
from flowdeck.local.metering import METER

Handler = Callable[[dict[str, Any], Any], dict[str, Any]]

WS_PATH = "/ws"
HANDLER_THREADS = 32
# API Gateway refuses a frame over 128 KB from the management API (one frame is at most 32 KB).
MAX_POST_BYTES = 128 * 1024
ROUTES = {"subscribe"}

logger = logging.getLogger(__name__)


@dataclass
class _Connection:
    websocket: WebSocket
    source_ip: str
    user_agent: str | None
    connected_at: float = field(default_factory=time.time)
    last_active_at: float = field(default_factory=time.time)
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def websocket_event(
    route_key: str,
    event_type: str,
    connection_id: str,
    domain: str,
    body: str | None = None,
    headers: dict[str, str] | None = None,
    source_ip: str = "127.0.0.1",
) -> dict[str, Any]:
    """One WebSocket event as API Gateway sends it to a Lambda integration."""
    now = time.time()
    event: dict[str, Any] = {
        "requestContext": {
            "routeKey": route_key,
            "eventType": event_type,
            "connectionId": connection_id,
            "domainName": domain,
            "stage": LOCAL_STAGE,
            "apiId": "local",
            "requestId": str(uuid.uuid4()),
            "messageId": secrets.token_urlsafe(8),
            "requestTimeEpoch": int(now * 1000),
            "connectedAt": int(now * 1000),
            "identity": {"sourceIp": source_ip, "accountId": None, "userArn": None, "caller": None},
        },
        "isBase64Encoded": False,
    }
    if body is not None:
        event["body"] = body
    if headers is not None:
        event["headers"] = headers
        event["multiValueHeaders"] = {k: [v] for k, v in headers.items()}
    return event


def route_key(body: str) -> str:
    """API Gateway's route selection (`$request.body.action`): a known action, else `$default`."""
    try:
        action = json.loads(body).get("action")
    except (ValueError, AttributeError):
        return "$default"
    return action if action in ROUTES else "$default"


def _iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat().replace("+00:00", "Z")


class WebSocketGateway:
    """The `/ws` route and the management API over one registry of open connections."""

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.connections: dict[str, _Connection] = {}
        # The handler does blocking boto3 I/O (and may post back to us): never on the event loop.
        self._pool = ThreadPoolExecutor(max_workers=HANDLER_THREADS, thread_name_prefix="flowdeck-ws")

    def routes(self) -> list[BaseRoute]:
        return [
            WebSocketRoute(WS_PATH, self._websocket),
            Route("/@connections/{connection_id}", self._manage, methods=["POST", "GET", "DELETE"]),
        ]

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    async def _invoke(self, event: dict[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self._call, event)

    def _call(self, event: dict[str, Any]) -> dict[str, Any]:
        context = LocalLambdaContext(aws_request_id=event["requestContext"]["requestId"])
        try:
            return METER.invoke("ws", self.handler, event, context)
        except Exception:
            logger.exception("WebSocket handler failed on %s", event["requestContext"]["routeKey"])
            return {"statusCode": 500}

    async def _websocket(self, websocket: WebSocket) -> None:
        # Shaped like API Gateway's ("L0SM9cOFvHcCIhw="); URL-safe, so it is one path segment.
        connection_id = base64.urlsafe_b64encode(secrets.token_bytes(11)).decode()
        domain = websocket.url.netloc
        headers = {k: v for k, v in websocket.headers.items()}
        # A browser cannot set headers on a WebSocket: locally the page passes its identity as `?user=`.
        # Only the local stack trusts X-Flowdeck-User at all (Settings.trust_user_header); AWS uses IAM.
        if (user := websocket.query_params.get("user")) and USER_HEADER.lower() not in headers:
            headers[USER_HEADER.lower()] = user
        source_ip = websocket.client.host if websocket.client else "127.0.0.1"

        def event(route: str, kind: str, body: str | None = None) -> dict[str, Any]:
            return websocket_event(
                route, kind, connection_id, domain, body, headers if kind == "CONNECT" else None, source_ip
            )

        answer = await self._invoke(event("$connect", "CONNECT"))
        if int(answer.get("statusCode", 500)) != 200:
            await websocket.close(code=1008)
            return
        await websocket.accept()
        opened = time.time()
        self.connections[connection_id] = _Connection(websocket, source_ip, headers.get("user-agent"))
        try:
            while True:
                message = await websocket.receive()
                if message["type"] == "websocket.disconnect":
                    break
                body = message.get("text") or (message.get("bytes") or b"").decode("utf-8", "replace")
                self.connections[connection_id].last_active_at = time.time()
                METER.add("ws.messages_in")
                # In order per connection, as API Gateway invokes: the next message waits for this one.
                await self._invoke(event(route_key(body), "MESSAGE", body))
        except WebSocketDisconnect:
            pass
        finally:
            METER.add("ws.connection_minutes", -(-(time.time() - opened) // 60))  # billed per started minute
            self.connections.pop(connection_id, None)
            await self._invoke(event("$disconnect", "DISCONNECT"))

    async def _manage(self, request: Request) -> Response:
        """PostToConnection, GetConnection, DeleteConnection."""
        connection_id = request.path_params["connection_id"]
        connection = self.connections.get(connection_id)
        if connection is None:
            return JSONResponse(
                {"message": "Gone"}, status_code=410, headers={"x-amzn-ErrorType": "GoneException"}
            )
        if request.method == "GET":
            return JSONResponse(
                {
                    "connectedAt": _iso(connection.connected_at),
                    "lastActiveAt": _iso(connection.last_active_at),
                    "identity": {"sourceIp": connection.source_ip, "userAgent": connection.user_agent},
                }
            )
        if request.method == "DELETE":
            self.connections.pop(connection_id, None)
            await connection.websocket.close()
            return Response(status_code=204)
        data = await request.body()
        if len(data) > MAX_POST_BYTES:
            return JSONResponse(
                {"message": "Message too long"},
                status_code=413,
                headers={"x-amzn-ErrorType": "PayloadTooLargeException"},
            )
        try:
            # One send at a time per connection: concurrent posts must not interleave on the socket.
            async with connection.lock:
                await connection.websocket.send_text(data.decode("utf-8", "replace"))
            METER.add("ws.messages_out", -(-len(data) // 32768))  # billed per started 32 KB
        except (RuntimeError, OSError, WebSocketDisconnect):
            self.connections.pop(connection_id, None)
            return JSONResponse(
                {"message": "Gone"}, status_code=410, headers={"x-amzn-ErrorType": "GoneException"}
            )
        return Response(status_code=200)
