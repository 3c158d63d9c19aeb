"""The local `/ws` endpoint and `@connections` management API, driven by a real WebSocket and boto3."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from websockets.sync.client import connect

from flowdeck.local.http import ApiServer
from flowdeck.local.websocket import WebSocketGateway


class Recorder:
    """A WebSocket handler that records its events and refuses users named `intruder`."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
        if (event.get("headers") or {}).get("x-flowdeck-user") == "intruder":
            return {"statusCode": 403}
        return {"statusCode": 200}

    def routes(self) -> list[str]:
        return [e["requestContext"]["routeKey"] for e in self.events]

    def wait_for(self, route: str, timeout: float = 5) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                found = [e for e in self.events if e["requestContext"]["routeKey"] == route]
            if found:
                return found[-1]
            time.sleep(0.01)
        raise AssertionError(f"no {route} event: {self.routes()}")


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[ApiServer]:
    gateway = WebSocketGateway(recorder)

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 200, "body": "api"}

    with ApiServer(api, port=0, routes=gateway.routes()) as server:
        yield server
    gateway.close()


@pytest.fixture
def management(server: ApiServer) -> Any:
    return boto3.client("apigatewaymanagementapi", region_name="us-east-1", endpoint_url=server.url)


def ws_url(server: ApiServer) -> str:
    return f"ws://{server.host}:{server.port}/ws"


def test_connect_message_and_disconnect_become_websocket_events(
    server: ApiServer, recorder: Recorder
) -> None:
    with connect(ws_url(server), additional_headers={"X-Flowdeck-User": "ana"}) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": "r1", "since_seq": 0}))
        ws.send(json.dumps({"action": "dance"}))
        recorder.wait_for("$default")
    recorder.wait_for("$disconnect")
    assert recorder.routes() == ["$connect", "subscribe", "$default", "$disconnect"]
    connect_event, subscribe_event = recorder.events[0], recorder.events[1]
    assert connect_event["requestContext"]["eventType"] == "CONNECT"
    assert connect_event["headers"]["x-flowdeck-user"] == "ana"
    assert subscribe_event["requestContext"]["eventType"] == "MESSAGE"
    assert json.loads(subscribe_event["body"])["run_id"] == "r1"
    ids = {e["requestContext"]["connectionId"] for e in recorder.events}
    assert len(ids) == 1


def test_post_to_connection_through_boto3_reaches_the_client(
    server: ApiServer, recorder: Recorder, management: Any
) -> None:
    with connect(ws_url(server)) as ws:
        connection_id = recorder.wait_for("$connect")["requestContext"]["connectionId"]
        management.post_to_connection(ConnectionId=connection_id, Data=b'{"type": "run"}')
        management.post_to_connection(ConnectionId=connection_id, Data="é".encode())
        assert ws.recv(timeout=5) == '{"type": "run"}'
        assert ws.recv(timeout=5) == "é"
        info = management.get_connection(ConnectionId=connection_id)
        assert info["Identity"]["SourceIp"] == "127.0.0.1"


def test_post_to_an_unknown_connection_is_gone(management: Any) -> None:
    with pytest.raises(ClientError) as raised:
        management.post_to_connection(ConnectionId="nope=", Data=b"x")
    assert raised.value.response["Error"]["Code"] == "GoneException"
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 410


def test_delete_connection_closes_it(server: ApiServer, recorder: Recorder, management: Any) -> None:
    with connect(ws_url(server)) as ws:
        connection_id = recorder.wait_for("$connect")["requestContext"]["connectionId"]
        management.delete_connection(ConnectionId=connection_id)
        recorder.wait_for("$disconnect")
        with pytest.raises(ClientError):
            management.post_to_connection(ConnectionId=connection_id, Data=b"x")
        ws.close()


def test_refused_connect_closes_the_handshake(server: ApiServer, recorder: Recorder) -> None:
    with pytest.raises(Exception, match="403"):
        connect(ws_url(server), additional_headers={"X-Flowdeck-User": "intruder"})


def test_other_paths_still_reach_the_api(server: ApiServer) -> None:
    import httpx

    assert httpx.get(server.url + "/runs").text == "api"
