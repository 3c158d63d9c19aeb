"""The WebSocket API Lambda (SPEC §4): `$connect`, `$disconnect` and `subscribe`, by route key."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck.config import get_settings
from flowdeck.constants import USER_HEADER
from flowdeck.errors import FlowdeckError
from flowdeck.identity import signed_principal
from flowdeck.live.frames import error_frame
from lambdas.deps import ANONYMOUS, MAX_USER_LENGTH, directory
from lambdas.live_deps import live_service
from lambdas.observability import logger

OK = {"statusCode": 200}


def caller(event: dict[str, Any]) -> str:
    """The signed person or IAM principal of `$connect` on AWS; locally the X-Flowdeck-User header."""
    identity = event["requestContext"].get("identity") or {}
    if principal := signed_principal(identity, directory()):
        return principal
    if not get_settings().trust_user_header:
        return ANONYMOUS
    headers = {k.lower(): v for k, v in (event.get("headers") or {}).items()}
    user = str(headers.get(USER_HEADER.lower()) or "").strip()[:MAX_USER_LENGTH]
    return user or ANONYMOUS


@logger.inject_lambda_context(correlation_id_path="requestContext.connectionId")
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    route = event["requestContext"]["routeKey"]
    connection_id = event["requestContext"]["connectionId"]
    service = live_service()
    try:
        if route == "$connect":
            try:
                user = caller(event)
            except FlowdeckError as refused:
                logger.warning("connection refused", extra={"reason": refused.message})
                return {"statusCode": refused.status}
            service.connect(connection_id, user)
        elif route == "$disconnect":
            service.disconnect(connection_id)
        elif route == "subscribe":
            service.subscribe(connection_id, event.get("body"))
        else:
            service.send(connection_id, error_frame("BadRequest", "unknown action; send subscribe"))
    except Exception:
        # A failed message must not end the connection: tell the client, keep it open.
        logger.exception("WebSocket route failed", extra={"route": route})
        if route not in ("$connect", "$disconnect"):
            service.send(connection_id, error_frame("InternalError", "internal error"))
            return OK
        return {"statusCode": 500}
    return OK
