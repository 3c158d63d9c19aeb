"""The REST API Lambda (SPEC §3): powertools resolver, routes by resource, errors mapped once."""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from functools import cache
from http import HTTPStatus
from typing import Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, CORSConfig, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.event_handler.openapi.exceptions import (
    RequestUnsupportedContentType,
    RequestValidationError,
)
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.middleware_factory import lambda_handler_decorator
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck import __version__
from flowdeck.config import get_settings
from flowdeck.constants import CORS_ALLOW_HEADERS, MAX_REQUEST_BODY_BYTES
from flowdeck.errors import FlowdeckError
from lambdas.observability import logger
from lambdas.responses import ErrorBody, error_response
from lambdas.routes import approvals as approval_routes
from lambdas.routes import artifacts, runs, workflows
from lambdas.routes import cancel as cancel_routes
from lambdas.routes import costs as cost_routes
from lambdas.routes import decisions as decision_routes
from lambdas.routes import hooks as hook_routes
from lambdas.routes import logs as log_routes
from lambdas.routes import retry as retry_routes
from lambdas.routes import slack as slack_routes


def dashboard_cors() -> CORSConfig | None:
    """CORS for the dashboard's origin only (FlowdeckWeb sets it on AWS); none without a dashboard."""
    origin = get_settings().dashboard_url.rstrip("/")
    if not origin:
        return None
    return CORSConfig(allow_origin=origin, allow_headers=list(CORS_ALLOW_HEADERS), max_age=3600)


app = APIGatewayRestResolver(enable_validation=True, cors=dashboard_cors())
app.include_router(workflows.router)
app.include_router(runs.router)
app.include_router(artifacts.router)
app.include_router(log_routes.router)
app.include_router(cost_routes.router)
app.include_router(decision_routes.router)
app.include_router(cancel_routes.router)
app.include_router(hook_routes.router)
app.include_router(retry_routes.router)
app.include_router(slack_routes.router)
app.include_router(approval_routes.router)

Handler = Callable[[dict[str, Any], LambdaContext], dict[str, Any]]

_PARAM_LOCATIONS = {"body", "query", "path", "header", "cookie"}
_ERROR_BODY_REF = "#/components/schemas/ErrorBody"
_FRIENDLY = {"extra_forbidden": "unknown field", "missing": "required"}


@cache
def _openapi_document() -> str:
    document = json.loads(
        app.get_openapi_json_schema(
            title="Flowdeck",
            version=__version__,
            description="Run workflows on AWS Step Functions and see everything about each run.",
        )
    )
    return json.dumps(_spec_validation_errors(document), indent=2)


def _spec_validation_errors(document: dict[str, Any]) -> dict[str, Any]:
    """Powertools documents every 422 as its own HTTPValidationError; ours answer SPEC §3's ErrorBody."""
    ours = {
        "description": "Unprocessable Content",
        "content": {content_types.APPLICATION_JSON: {"schema": {"$ref": _ERROR_BODY_REF}}},
    }
    # Any caller may be refused: on AWS a signed-in person without a verified e-mail in the user pool.
    forbidden = {"description": "Forbidden"} | {k: v for k, v in ours.items() if k == "content"}
    for template, operations in document["paths"].items():
        for method, operation in operations.items():
            if "HTTPValidationError" in json.dumps(operation["responses"].get("422", {})):
                operation["responses"]["422"] = ours
            operation["responses"].setdefault("403", forbidden)
            # A path parameter no route pattern accepts (a newline, a slash) answers no_route's 404.
            if "{" in template:
                _answers_error_body(operation, 404)
            # Refused before any route reads the body: over 1 MiB, a multipart type without its boundary.
            if method in ("post", "put"):
                _answers_error_body(operation, 400)
                _answers_error_body(operation, 413)
    schemas = document.get("components", {}).get("schemas", {})
    for unused in ("HTTPValidationError", "ValidationError", "ResponseValidationError"):
        schemas.pop(unused, None)
    return document


def _answers_error_body(operation: dict[str, Any], status: int) -> None:
    """Document `status` with SPEC §3's JSON body (beside an HTML page where the route answers one)."""
    answer = operation["responses"].setdefault(str(status), {"description": HTTPStatus(status).phrase})
    answer.setdefault("content", {})[content_types.APPLICATION_JSON] = {"schema": {"$ref": _ERROR_BODY_REF}}


@app.get("/openapi.json", include_in_schema=False)
def openapi_document() -> Response[str]:
    """This API's OpenAPI document, generated from the routes above."""
    return Response(200, content_types.APPLICATION_JSON, _openapi_document())


# -- errors, mapped once --------------------------------------------------------------------------
@app.exception_handler(FlowdeckError)
def domain_error(error: FlowdeckError) -> Response:
    return error_response(error.status, error.code, error.message)


def _field(loc: tuple[int | str, ...]) -> str:
    """("query", "query", "limit") -> "limit"; ("body", "inputs") -> "inputs"; ("body",) -> "body"."""
    parts = list(loc)
    if parts and parts[0] in _PARAM_LOCATIONS:
        where = parts.pop(0)
        # A query model parameter adds its own name before the field's.
        if where == "query" and len(parts) > 1:
            parts.pop(0)
    return ".".join(str(p) for p in parts) or str(loc[0] if loc else "request")


@app.exception_handler(RequestValidationError)
def validation_error(error: RequestValidationError) -> Response:
    problems = list(error.errors())
    if bad_json := next((p for p in problems if p.get("type") == "json_invalid"), None):
        why = (bad_json.get("ctx") or {}).get("error", "not JSON")
        return error_response(400, "BadRequest", f"request body is not valid JSON: {why}")
    # Field and pydantic's message only: no input values, no model dump, no traceback.
    message = "; ".join(f"{_field(p['loc'])}: {_FRIENDLY.get(p['type'], p['msg'])}" for p in problems)
    sent_as = _content_type(app.current_event.raw_event)
    if (
        sent_as
        and sent_as != content_types.APPLICATION_JSON
        and any(p["loc"][:1] == ("body",) for p in problems)
    ):
        # A form-encoded body is read field by field: say so, or the fields' errors read as nonsense.
        message = f"the body was sent as {sent_as}: send JSON with Content-Type: application/json ({message})"
    return error_response(422, "ValidationError", message)


@app.exception_handler(RequestUnsupportedContentType)
def unsupported_content_type(_: RequestUnsupportedContentType) -> Response:
    sent_as = _content_type(app.current_event.raw_event) or "no content type"
    return error_response(400, "BadRequest", f"send the request body as application/json, not {sent_as}")


@app.exception_handler(UnicodeDecodeError)
def body_not_utf8(error: UnicodeDecodeError) -> Response:
    # Powertools decodes a base64 body as UTF-8 text to read it as JSON or a form.
    if _base64_body_is_not_utf8(app.current_event.raw_event):
        return error_response(400, "BadRequest", "the request body is not UTF-8 text: send JSON in UTF-8")
    return unexpected_error(error)


@app.not_found
def no_route(_: NotFoundError) -> Response:
    # Also for a known path with another method: 404 rather than 405 (powertools does not tell them apart).
    event = app.current_event
    return error_response(404, "NotFound", f"no route for {event.http_method} {event.path}")


@app.exception_handler(Exception)
def unexpected_error(error: Exception) -> Response:
    logger.exception("unhandled error", exc_info=error)
    return error_response(500, "InternalError", "internal error")


# -- the handler ----------------------------------------------------------------------------------
def _body_size(event: dict[str, Any]) -> int:
    body = event.get("body") or ""
    return len(body) * 3 // 4 if event.get("isBase64Encoded") else len(body.encode("utf-8"))


@lambda_handler_decorator
def refuse_large_bodies(handler: Handler, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """413 before validation parses the body (API Gateway lets up to 10 MB through; we accept 1 MiB)."""
    if _body_size(event) <= MAX_REQUEST_BODY_BYTES:
        return handler(event, context)
    return _error_answer(413, "PayloadTooLarge", f"request body is over {MAX_REQUEST_BODY_BYTES} bytes")


def _error_answer(status: int, code: str, message: str) -> dict[str, Any]:
    """A SPEC §3 error as the Lambda proxy answer, for refusals made before the resolver runs."""
    return {
        "statusCode": status,
        "headers": {"Content-Type": content_types.APPLICATION_JSON},
        "multiValueHeaders": {},
        "body": json.dumps(ErrorBody(error=code, message=message).model_dump()),
        "isBase64Encoded": False,
    }


FORM = "application/x-www-form-urlencoded"
MULTIPART_FORM = "multipart/form-data"


def _content_type(event: dict[str, Any]) -> str:
    """The request's media type, lower case, without parameters; '' when not given."""
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    return str(headers.get("content-type") or "").split(";")[0].strip().lower()


def _base64_body_is_not_utf8(event: dict[str, Any]) -> bool:
    if not event.get("isBase64Encoded"):
        return False
    try:
        base64.b64decode(event.get("body") or "").decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        return True
    return False


def _has_boundary(content_type: str) -> bool:
    """Whether powertools' multipart parser finds a boundary here (it reads `boundary=` in lower case)."""
    for parameter in content_type.split(";")[1:]:
        name, _, value = parameter.strip().partition("=")
        if name == "boundary":
            return bool(value.strip('"'))
    return False


def _looks_like_json(event: dict[str, Any]) -> bool:
    body = event.get("body") or ""
    if event.get("isBase64Encoded"):
        try:
            body = base64.b64decode(body).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            return False
    return body.lstrip()[:1] in ("{", "[")


@lambda_handler_decorator
def read_json_bodies(handler: Handler, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A JSON body sent without a JSON content type (`curl -d '{...}'` says form-urlencoded) is read as
    JSON, not as one form field named by the whole body."""
    if event.get("body") and _content_type(event) in ("", FORM) and _looks_like_json(event):
        headers = {k: v for k, v in (event.get("headers") or {}).items() if str(k).lower() != "content-type"}
        multi = {
            k: v
            for k, v in (event.get("multiValueHeaders") or {}).items()
            if str(k).lower() != "content-type"
        }
        event = event | {
            "headers": headers | {"Content-Type": content_types.APPLICATION_JSON},
            "multiValueHeaders": multi | {"Content-Type": [content_types.APPLICATION_JSON]},
        }
    return handler(event, context)


@lambda_handler_decorator
def read_multipart_bodies(handler: Handler, event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """A multipart body without a boundary is refused (400); one that arrived as text is passed on as the
    bytes sent, base64-encoded as API Gateway does for a binary media type (powertools reads text as
    latin-1: a character outside it raised, one inside it came out garbled)."""
    # Powertools parses every media type that starts so as multipart.
    if not _content_type(event).startswith(MULTIPART_FORM):
        return handler(event, context)
    headers = {str(k).lower(): str(v) for k, v in (event.get("headers") or {}).items()}
    if not _has_boundary(headers.get("content-type", "")):
        message = f"Content-Type {MULTIPART_FORM} needs a boundary parameter: send JSON with application/json"
        return _error_answer(400, "BadRequest", message)
    if event.get("body") and not event.get("isBase64Encoded"):
        sent = base64.b64encode(str(event["body"]).encode("utf-8")).decode("ascii")
        event = event | {"body": sent, "isBase64Encoded": True}
    return handler(event, context)


@lambda_handler_decorator
def refuse_control_characters(
    handler: Handler, event: dict[str, Any], context: LambdaContext
) -> dict[str, Any]:
    """No route's path holds a control character; one that ends in a newline would match a route anyway
    (powertools' patterns end in `$`, which Python also matches before a final newline)."""
    path = str(event.get("path") or "")
    if not any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return handler(event, context)
    return _error_answer(404, "NotFound", f"no route for {event.get('httpMethod')} {path}")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@refuse_control_characters
@refuse_large_bodies
@read_multipart_bodies
@read_json_bodies
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
