"""The WebSocket and fan-out Lambda handlers on moto, fed API Gateway and DynamoDB Streams events."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck.live.service import LiveService
from flowdeck.stores.connections import Connections
from flowdeck.stores.logs import LogStore, encode_lines
from flowdeck.stores.schema import create_connections_table_kwargs, create_logs_table_kwargs
from lambdas import fanout, live_deps, ws
from tests.integration.test_live import FakeRuns, Socket

EVENTS = Path(__file__).parent.parent / "events"
RUN = "20261121-120000-abcdef01"
CONNECTION = "L0SM9cOFvHcCIhw="


def event(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


class Runs(FakeRuns):
    def get_run(self, run_id: str) -> dict[str, Any]:
        return {"run_id": run_id, "status": "running", "steps": [{"id": "build", "status": "pending"}]}


@pytest.fixture
def socket(monkeypatch: pytest.MonkeyPatch) -> Iterator[Socket]:
    recorder = Socket()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_logs_table_kwargs("logs"))
        ddb.create_table(**create_connections_table_kwargs("connections"))
        service = LiveService(
            Connections("connections", client=ddb), LogStore("logs", client=ddb), Runs(), recorder
        )
        monkeypatch.setattr(ws, "live_service", lambda: service)
        monkeypatch.setattr(fanout, "live_service", lambda: service)
        yield recorder
    live_deps.live_service.cache_clear()


def connect_event() -> dict[str, Any]:
    subscribe = event("ws_subscribe.json")
    context = subscribe["requestContext"] | {"routeKey": "$connect", "eventType": "CONNECT"}
    return {"requestContext": context, "headers": {"X-Flowdeck-User": "ana"}, "isBase64Encoded": False}


def test_subscribe_then_stream_records_reach_the_connection(socket: Socket, lambda_context: Any) -> None:
    assert ws.lambda_handler(connect_event(), lambda_context) == {"statusCode": 200}
    assert ws.lambda_handler(event("ws_subscribe.json"), lambda_context) == {"statusCode": 200}
    fanout.lambda_handler(event("dynamodb_stream_runs_and_logs.json"), lambda_context)
    frames = socket.frames[CONNECTION]
    # Snapshot, the step going running (the heartbeat-only change is not sent), the log batch.
    assert [(f["type"], f.get("status")) for f in frames] == [
        ("run", "running"),
        ("step", "pending"),
        ("step", "running"),
        ("log", None),
    ]
    assert frames[-1] | {"seq": 1, "step": "build"} == frames[-1]
    assert frames[-1]["lines"][0]["text"] == "compiling"


def test_bad_message_answers_an_error_frame_and_keeps_the_connection(
    socket: Socket, lambda_context: Any
) -> None:
    ws.lambda_handler(connect_event(), lambda_context)
    bad = event("ws_subscribe.json") | {"body": json.dumps({"action": "subscribe", "run_id": "../x"})}
    assert ws.lambda_handler(bad, lambda_context) == {"statusCode": 200}
    other = event("ws_subscribe.json")
    other["requestContext"] = other["requestContext"] | {"routeKey": "$default"}
    assert ws.lambda_handler(other, lambda_context) == {"statusCode": 200}
    assert [(f["type"], f["error"]) for f in socket.frames[CONNECTION]] == [("error", "BadRequest")] * 2


def test_a_compressed_batch_in_a_lambda_stream_event_reaches_the_connection(
    socket: Socket, lambda_context: Any
) -> None:
    # Given the logs record as Lambda delivers today's layout: the binary `lines` as base64 text
    stream = event("dynamodb_stream_runs_and_logs.json")
    logs_record = stream["Records"][-1]["dynamodb"]["NewImage"]
    lines = [{"t": 1795280001.5, "stream": "stderr", "text": 'ünïcode \x1b[31mred\x1b[0m "quoted"'}]
    logs_record["lines"] = {"B": base64.b64encode(encode_lines(lines)).decode("ascii")}
    ws.lambda_handler(connect_event(), lambda_context)
    ws.lambda_handler(event("ws_subscribe.json"), lambda_context)
    # When the fan-out handles it
    fanout.lambda_handler(stream, lambda_context)
    # Then the viewer gets the lines decoded
    frame = socket.frames[CONNECTION][-1]
    assert (frame["type"], frame["seq"], frame["lines"]) == ("log", 1, lines)
