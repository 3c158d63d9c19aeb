"""Scale-in protection against a stand-in of the ECS agent's endpoint: a real HTTP server in the test."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from test_worker import message
from test_worker_stop import (  # the fixture ends the workers a test leaves running
    TABLE,
    RunningWorker,
    no_worker_outlives_its_test,  # noqa: F401
    send,
    wait_until_running,
)

from flowdeck.runner.protection import AgentEndpoint, ScaleInProtection
from flowdeck.stores.runs import RunStore

TASK_ARN = "arn:aws:ecs:us-east-1:123456789012:task/flowdeck/0123456789abcdef"


class AgentStandIn:
    """Answers PUT /task-protection/v1/state as the ECS agent does, and records each request body."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        # The agent's answer to a refused update: its status and body (None: accept).
        self.refuse_with: tuple[int, dict[str, Any]] | None = None
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path != "/task-protection/v1/state" or "ProtectionEnabled" not in body:
                    self._answer(400, {"error": {"Code": "InvalidParameterException", "Message": "bad"}})
                    return
                stand_in.bodies.append(body)
                if stand_in.refuse_with is not None:
                    self._answer(*stand_in.refuse_with)
                    return
                protection = {"ProtectionEnabled": body["ProtectionEnabled"], "TaskArn": TASK_ARN}
                if body["ProtectionEnabled"]:
                    protection["ExpirationDate"] = "2026-12-06T08:00:00Z"
                self._answer(200, {"protection": protection})

            def _answer(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def states(self) -> list[bool]:
        return [body["ProtectionEnabled"] for body in self.bodies]


@pytest.fixture
def agent() -> Iterator[AgentStandIn]:
    stand_in = AgentStandIn()
    yield stand_in
    stand_in.server.shutdown()
    stand_in.server.server_close()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time allowed"
        time.sleep(0.02)


def test_protection_is_on_while_work_is_held_and_off_once_idle(agent):
    protection = ScaleInProtection(AgentEndpoint(agent.uri), release_after=0.3)

    with protection.holding():
        eventually(lambda: agent.states() == [True])
        assert agent.bodies[0] == {"ProtectionEnabled": True, "ExpiresInMinutes": 15}
        with protection.holding():  # a second step beside it changes nothing
            time.sleep(0.1)
    eventually(lambda: agent.states() == [True, False])
    protection.close()

    assert agent.bodies[1] == {"ProtectionEnabled": False}
    assert agent.states() == [True, False]  # closing an unprotected worker calls nothing


def test_sequential_steps_keep_protection_without_turning_it_off_between_them(agent):
    protection = ScaleInProtection(AgentEndpoint(agent.uri), release_after=5)

    for _ in range(3):
        with protection.holding():
            eventually(lambda: agent.states() == [True])

    assert agent.states() == [True]
    protection.close()  # a worker that leaves turns it off
    assert agent.states() == [True, False]


def test_protection_is_renewed_while_a_long_step_runs(agent):
    protection = ScaleInProtection(AgentEndpoint(agent.uri), renew_every=0.2)

    with protection.holding():
        eventually(lambda: agent.states().count(True) >= 3)
    protection.close()


def test_a_refused_update_is_tried_again_and_never_fails_the_work(agent):
    agent.refuse_with = (
        409,
        {"failure": {"Arn": TASK_ARN, "Reason": "TASK_STOPPING_OR_STOPPED", "Detail": None}},
    )
    protection = ScaleInProtection(AgentEndpoint(agent.uri), retry_every=0.2)

    with protection.holding():
        eventually(lambda: len(agent.bodies) >= 2)
        assert not protection.protected
        agent.refuse_with = None
        eventually(lambda: protection.protected)
    protection.close()


def test_an_agent_that_does_not_answer_is_a_warning_not_an_error():
    endpoint = AgentEndpoint("http://127.0.0.1:9", timeout=0.5)  # discard port: nothing listens

    assert endpoint.put(True) is False


def test_without_an_agent_uri_there_is_nothing_to_protect():
    protection = ScaleInProtection.for_agent("")

    with protection.holding():
        assert protection.held == 1
    protection.close()

    assert protection.agent is None and not protection.protected


def test_a_worker_is_protected_while_it_runs_a_step_and_unprotected_when_it_leaves(
    agent, worker_aws, tmp_path: Path
):
    running = RunningWorker(worker_aws, tmp_path, stop_seconds=60, agent_uri=agent.uri)
    send(worker_aws, message(run="sleep 1"))
    wait_until_running(RunStore(TABLE, worker_aws["ddb"]))
    eventually(lambda: agent.states() == [True])

    running.stop_and_wait(timeout=30)

    assert agent.states() == [True, False]
    assert [kind for kind, _ in running.sfn.answers()] == ["success"]
