"""Faults injected on purpose into the local stack: a test hook, off unless a test or bench asks for it.

Two kinds, given as `LocalStack(faults=[...])` (the stack hands the emulator its part in FLOWDECK_FAULTS):

- `AwsFault`: the emulator answers matching AWS requests with an error, as the service would
  (DynamoDB throttling, S3 internal errors), so the SDK's retry mode and our handling of what it gives
  up on are exercised by real requests;
- `HandlerFault`: a stream handler (fan-out, run-events) raises on its first `times` invocations, as a
  Lambda function that fails a batch.

Nothing outside flowdeck/local/ reads either; the core sees only the errors, as it would on AWS.
"""

from __future__ import annotations

import io
import json
import threading
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from flowdeck.local.metering import request_name

ENV_FAULTS = "FLOWDECK_FAULTS"

_JSON_CONTENT = "application/x-amz-json-1.0"


class AwsFault(BaseModel):
    """Answer `request` (`service:Action`, S3 by method: `s3:PUT`) with `error`, one of every `every`
    matching requests, at most `limit` times; `match` narrows it to requests whose path or body has it."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["aws"] = "aws"
    request: str
    error: str
    status: int = Field(default=400, ge=400, le=599)
    match: str = ""
    every: int = Field(default=1, ge=1)
    limit: int | None = Field(default=None, ge=1)


class HandlerFault(BaseModel):
    """The stream handler `handler` (`fanout`, `run_events`) raises on its first `times` invocations
    (those whose event, as JSON, has `match` in it)."""

    model_config = ConfigDict(extra="forbid")
    kind: Literal["handler"] = "handler"
    handler: str
    times: int = Field(ge=1)
    match: str = ""


Fault = AwsFault | HandlerFault
_FAULTS: TypeAdapter[list[Fault]] = TypeAdapter(list[Fault])


class InjectedFault(RuntimeError):
    """What a faulty handler raises."""


def parse(text: str) -> list[Fault]:
    """The faults of FLOWDECK_FAULTS (a JSON list)."""
    return _FAULTS.validate_json(text)


def dump(faults: Iterable[Fault]) -> str:
    return json.dumps([fault.model_dump() for fault in faults])


class _Counter:
    """Thread-safe: which matching requests of one fault fail."""

    def __init__(self, fault: AwsFault) -> None:
        self.fault = fault
        self.seen = 0
        self.failed = 0
        self.lock = threading.Lock()

    def fails_now(self) -> bool:
        with self.lock:
            self.seen += 1
            limit = self.fault.limit
            if (self.seen - 1) % self.fault.every or (limit is not None and self.failed >= limit):
                return False
            self.failed += 1
            return True


def _error_response(fault: AwsFault, environ: dict[str, Any]) -> tuple[str, list[tuple[str, str]], bytes]:
    """The error as the service's protocol words it: JSON (X-Amz-Target), S3's XML, or the query XML."""
    message = f"injected fault: {fault.error}"
    service = request_name(environ).partition(":")[0]
    if environ.get("HTTP_X_AMZ_TARGET"):
        body = json.dumps({"__type": f"com.amazonaws.{service}#{fault.error}", "message": message}).encode()
        kind = _JSON_CONTENT
    else:
        error = f"<Error><Code>{fault.error}</Code><Message>{message}</Message></Error>"
        document = error if service == "s3" else f"<ErrorResponse>{error}</ErrorResponse>"
        body = f"<?xml version='1.0' encoding='UTF-8'?>{document}".encode()
        kind = "text/xml"
    status = f"{fault.status} Injected Fault"
    # A request id, as every AWS answer has (moto's executor reads it when it words a failure).
    request_id = uuid.uuid4().hex
    headers = [("x-amzn-RequestId", request_id), ("x-amz-request-id", request_id)]
    return status, [("Content-Type", kind), ("Content-Length", str(len(body))), *headers], body


WsgiCall = Callable[[Any, dict[str, Any], Any], Any]


def inject(call: WsgiCall, faults: Iterable[Fault]) -> WsgiCall:
    """A WSGI `__call__` (moto's DomainDispatcherApplication's) that answers the AWS faults first."""
    counters = [_Counter(f) for f in faults if isinstance(f, AwsFault)]
    if not counters:
        return call

    def faulty_call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        name = request_name(environ)
        for counter in counters:
            if counter.fault.request != name:
                continue
            if counter.fault.match and counter.fault.match not in _path_and_body(environ):
                continue
            if counter.fails_now():
                status, headers, body = _error_response(counter.fault, environ)
                start_response(status, headers)
                return [body]
        return call(self, environ, start_response)

    return faulty_call


def _path_and_body(environ: dict[str, Any]) -> str:
    """The request's path and body (the body is read and put back for moto)."""
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return environ.get("PATH_INFO", "") + "\n" + body.decode("utf-8", errors="replace")


def faulty_handler(handler: Callable[..., Any], name: str, faults: Iterable[Fault]) -> Callable[..., Any]:
    """`handler`, raising InjectedFault on the invocations the handler faults for `name` pick."""
    mine = [f for f in faults if isinstance(f, HandlerFault) and f.handler == name]
    if not mine:
        return handler
    left = {id(f): f.times for f in mine}
    lock = threading.Lock()

    def call(event: dict[str, Any], context: Any) -> Any:
        # default=str: stream records carry datetimes (ApproximateCreationDateTime).
        text = json.dumps(event, default=str) if any(f.match for f in mine) else ""
        with lock:
            fault = next((f for f in mine if left[id(f)] > 0 and f.match in text), None)
            if fault is not None:
                left[id(fault)] -= 1
        if fault is not None:
            raise InjectedFault(f"injected fault: {name} failed a batch of {len(event.get('Records', []))}")
        return handler(event, context)

    return call
