"""The local HTTP server: requests become API Gateway REST events, answers become HTTP responses."""

from __future__ import annotations

import base64
import json
import socket
import threading
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from flowdeck.local.http import ApiServer, PortInUse
from lambdas.api import lambda_handler


class Recorder:
    """A fake handler: remembers each event and answers with what the test set."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self.contexts: list[Any] = []
        self.answer: dict[str, Any] = {
            "statusCode": 200,
            "headers": {"Content-Type": "application/json"},
            "body": "{}",
        }
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        with self.lock:
            self.events.append(event)
            self.contexts.append(context)
        return self.answer


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def server(recorder: Recorder) -> Iterator[ApiServer]:
    with ApiServer(recorder, port=0) as running:
        yield running


@pytest.fixture
def http(server: ApiServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=10) as client:
        yield client


def test_get_becomes_a_rest_proxy_event(http: httpx.Client, recorder: Recorder) -> None:
    http.get(
        "/runs", params=[("status", "failed"), ("status", "running"), ("limit", "5")], headers={"X-A": "1"}
    )

    [event] = recorder.events
    assert (event["httpMethod"], event["path"], event["resource"]) == ("GET", "/runs", "/{proxy+}")
    assert event["pathParameters"] == {"proxy": "runs"}
    assert event["queryStringParameters"] == {"status": "running", "limit": "5"}
    assert event["multiValueQueryStringParameters"] == {"status": ["failed", "running"], "limit": ["5"]}
    assert event["headers"]["x-a"] == "1"
    assert event["multiValueHeaders"]["x-a"] == ["1"]
    assert (event["body"], event["isBase64Encoded"]) == (None, False)
    context = event["requestContext"]
    assert (context["stage"], context["httpMethod"], context["path"]) == ("local", "GET", "/runs")
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert context["identity"]["userArn"] is None
    assert context["requestId"] == recorder.contexts[0].aws_request_id
    assert recorder.contexts[0].get_remaining_time_in_millis() > 0


def test_utf8_body_is_passed_as_text(http: httpx.Client, recorder: Recorder) -> None:
    http.post("/workflows/hello/runs", json={"inputs": {"name": "wörld"}})

    [event] = recorder.events
    assert event["isBase64Encoded"] is False
    assert json.loads(event["body"]) == {"inputs": {"name": "wörld"}}
    assert event["headers"]["content-type"] == "application/json"


def test_binary_body_is_base64(http: httpx.Client, recorder: Recorder) -> None:
    http.put("/blob", content=b"\xff\x00\xfe")

    [event] = recorder.events
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == b"\xff\x00\xfe"


@pytest.mark.parametrize("path", ["/workflows/\n", "/runs/\nJ?/costs", "/approvals/<#\\\n0"])
def test_a_path_with_a_newline_reaches_the_handler_as_api_gateways_proxy_resource_passes_it(
    http: httpx.Client, recorder: Recorder, path: str
) -> None:
    # Starlette's `{path:path}` stopped at a newline: its router answered a plain-text `Not Found`.
    response = http.get(quote(path))

    assert response.status_code == 200
    [event] = recorder.events
    assert (event["path"], event["pathParameters"]) == (path, {"proxy": path.lstrip("/")})


def test_a_method_api_gateway_does_not_route_is_not_passed_on(http: httpx.Client, recorder: Recorder) -> None:
    response = http.request("TRACE", "/workflows")

    assert response.status_code == 405
    assert recorder.events == []


@pytest.mark.parametrize("chunked", [False, True])
def test_body_over_one_mib_is_413_before_the_handler(
    http: httpx.Client, recorder: Recorder, chunked: bool
) -> None:
    big = b"x" * (2 * 1024 * 1024)
    content: Any = iter([big[i : i + 65536] for i in range(0, len(big), 65536)]) if chunked else big

    response = http.post("/workflows/hello/runs", content=content)

    assert response.status_code == 413
    assert response.json()["error"] == "PayloadTooLarge"
    assert recorder.events == []


def test_answer_round_trips_status_headers_and_json(http: httpx.Client, recorder: Recorder) -> None:
    recorder.answer = {
        "statusCode": 202,
        "headers": {"Content-Type": "application/json"},
        "multiValueHeaders": {"Set-Cookie": ["a=1", "b=2"]},
        "body": json.dumps({"run_id": "r1"}),
        "isBase64Encoded": False,
    }

    response = http.post("/workflows/hello/runs", json={})

    assert response.status_code == 202
    assert response.json() == {"run_id": "r1"}
    assert response.headers.get_list("set-cookie") == ["a=1", "b=2"]


def test_base64_answer_is_decoded(http: httpx.Client, recorder: Recorder) -> None:
    recorder.answer = {
        "statusCode": 200,
        "body": base64.b64encode(b"\x00\x01").decode(),
        "isBase64Encoded": True,
    }

    assert http.get("/artifact").content == b"\x00\x01"


def test_handler_failure_is_500_in_the_error_shape(server: ApiServer, http: httpx.Client) -> None:
    def broken(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise RuntimeError("secret detail")

    server.handler = broken

    response = http.get("/workflows")

    assert response.status_code == 500
    assert response.json() == {"error": "InternalError", "message": "internal error"}


def test_port_in_use_is_a_clear_error(recorder: Recorder) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        with pytest.raises(PortInUse, match=f"127.0.0.1:{port}.*flowdeck up"):
            ApiServer(recorder, port=port).start()


def test_stop_releases_the_port(recorder: Recorder) -> None:
    server = ApiServer(recorder, port=0)
    server.start()
    port = server.port
    server.stop()

    again = ApiServer(recorder, port=port)
    again.start()
    again.stop()


def test_real_handler_behind_the_server(flowdeck_aws: tuple[Any, Any]) -> None:
    _, sfn = flowdeck_aws
    with ApiServer(lambda_handler, port=0) as server, httpx.Client(base_url=server.url, timeout=10) as client:
        listed = client.get("/workflows")
        started = client.post(
            "/workflows/deploy/runs",
            json={"inputs": {"environment": "production"}},
            headers={"X-Flowdeck-User": "eve"},
        )
        missing = client.get("/runs/nope")
        bad = client.post(
            "/workflows/deploy/runs", content=b"{oops", headers={"Content-Type": "application/json"}
        )

    assert [w["name"] for w in listed.json()["workflows"]] == ["deploy", "hello"]
    assert started.status_code == 202
    machine = next(m for m in sfn.list_state_machines()["stateMachines"] if m["name"] == "flowdeck-deploy")
    [execution] = sfn.list_executions(stateMachineArn=machine["stateMachineArn"])["executions"]
    described = sfn.describe_execution(executionArn=execution["executionArn"])
    assert json.loads(described["input"])["started_by"] == "eve"
    assert (missing.status_code, missing.json()["error"]) == (404, "RunNotFound")
    assert (bad.status_code, bad.json()["error"]) == (400, "BadRequest")


def test_parallel_requests_never_see_each_others_event() -> None:
    """Powertools keeps the event being resolved in class attributes: two requests at once must not mix.

    Without one-at-a-time resolution, a slow request read the identity of the request that came after it.
    """
    from concurrent.futures import ThreadPoolExecutor

    from aws_lambda_powertools.event_handler import APIGatewayRestResolver

    resolver = APIGatewayRestResolver()

    @resolver.get("/whoami")
    def whoami() -> dict[str, Any]:
        slow = resolver.current_event.get_query_string_value("slow") == "1"
        if slow:
            threading.Event().wait(0.3)  # the handler's I/O: another request arrives meanwhile
        return {"user": resolver.current_event.headers.get("X-Flowdeck-User")}

    with (
        ApiServer(resolver.resolve, port=0) as server,
        httpx.Client(base_url=server.url, timeout=10) as client,
        ThreadPoolExecutor(max_workers=2) as pool,
    ):
        slow = pool.submit(client.get, "/whoami?slow=1", headers={"X-Flowdeck-User": "alice"})
        threading.Event().wait(0.1)
        fast = pool.submit(client.get, "/whoami", headers={"X-Flowdeck-User": "mallory"})
        answers = (slow.result().json()["user"], fast.result().json()["user"])

    assert answers == ("alice", "mallory")
