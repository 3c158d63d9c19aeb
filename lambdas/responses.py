"""The one error shape of SPEC §3, for answers and for the OpenAPI document."""

from __future__ import annotations

from http import HTTPStatus

from aws_lambda_powertools.event_handler import Response, content_types
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from pydantic import BaseModel


class ErrorBody(BaseModel):
    """Every error answer: a stable code and a message for people."""

    error: str
    message: str


def error_response(status: int, code: str, message: str) -> Response:
    body = ErrorBody(error=code, message=message).model_dump()
    return Response(status, content_types.APPLICATION_JSON, body)


def answer_docs(status: int, description: str, model: type[BaseModel]) -> dict[int, OpenAPIResponse]:
    """The OpenAPI `responses` entry of a JSON success answer (`model` is its body)."""
    return {
        status: {"description": description, "content": {content_types.APPLICATION_JSON: {"model": model}}}
    }


def error_docs(*statuses: int) -> dict[int, OpenAPIResponse]:
    """OpenAPI `responses` entries for the error statuses a route can answer."""
    return {
        status: {
            "description": HTTPStatus(status).phrase,
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
        for status in statuses
    }


def not_allowed_docs(action: str) -> dict[int, OpenAPIResponse]:
    """The 403 of an action that a workflow's `permissions` may refuse (flowdeck.control.permissions)."""
    return {
        403: {
            "description": f"NotAllowed: the workflow's `permissions.{action}` does not name the caller "
            "(the message says what it needs); nothing was done",
            "content": {content_types.APPLICATION_JSON: {"model": ErrorBody}},
        }
    }
