"""The fresh task's runner: what RunTask told it, the message it builds, how its compute is priced."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from flowdeck.costs.calculator import RateCardCalculator
from flowdeck.costs.models import ComputeUsage, money
from flowdeck.definition.loader import parse_workflow
from flowdeck.runner.fresh import FreshTask, FreshTaskError, step_message, task_identity
from flowdeck.runner.usage import compute_usage
from statemachines.fresh_step import COLD_START_SECONDS
from statemachines.run_step import step_spec

DEFINITION = parse_workflow(
    """
name: build
inputs:
  target: {type: string, default: all}
  jobs: {type: integer, default: 2}
runtime_config: {mode: fresh, heartbeat_seconds: 40, retention_hours: 48, max_cost_usd: 1.5}
steps:
  - id: compile
    run: make "$TARGET"
    resources: {cpu: 512, memory: 1024}
    timeout: 10m
""",
    "build.yaml",
)
ENVIRON = {
    "FLOWDECK_FRESH_TOKEN": "token-1",
    "FLOWDECK_FRESH_RUN_ID": "run-1",
    "FLOWDECK_FRESH_WORKFLOW": "build",
    "FLOWDECK_FRESH_STEP": "compile",
    "FLOWDECK_FRESH_RETRY_COUNT": "1",
}


def test_the_task_reads_its_token_and_identity_from_the_environment():
    task = FreshTask.from_environ(ENVIRON | {"FLOWDECK_FRESH_ATTEMPT_BASE": "2"})
    assert task == FreshTask("token-1", "run-1", "build", "compile", retry_count=1, attempt_base=2)


def test_a_task_not_started_by_a_state_machine_says_what_is_missing():
    with pytest.raises(FreshTaskError, match="not set: FLOWDECK_FRESH_TOKEN, FLOWDECK_FRESH_STEP"):
        FreshTask.from_environ(
            {k: v for k, v in ENVIRON.items() if k not in {"FLOWDECK_FRESH_TOKEN", "FLOWDECK_FRESH_STEP"}}
        )
    with pytest.raises(FreshTaskError, match="a count is not a number"):
        FreshTask.from_environ(ENVIRON | {"FLOWDECK_FRESH_RETRY_COUNT": "one"})


def test_the_message_is_what_a_pool_worker_would_get_with_inputs_from_the_run_record():
    run = {"inputs_json": json.dumps({"target": "docs"}), "reused": ["lint"]}
    message = step_message(FreshTask.from_environ(ENVIRON), DEFINITION, run, "arn:task/1", 1000.0)

    assert message.inputs == {"target": "docs", "jobs": 2}
    assert message.reuse == ["lint"]
    assert message.spec.model_dump(by_alias=True, exclude_unset=True) == step_spec(DEFINITION.step("compile"))
    assert (message.retry_count, message.attempt) == (1, 2)
    assert message.heartbeat_seconds == 40 + COLD_START_SECONDS
    assert (message.retention_hours, message.max_cost_usd) == (48, Decimal("1.5"))
    assert (message.mode, message.task_arn, message.task_started_at) == ("fresh", "arn:task/1", 1000.0)


class _Metadata(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = json.dumps({"TaskARN": "arn:aws:ecs:task/c/abc", "PullStartedAt": "2026-01-02T03:04:05.5Z"})
        self.send_response(200 if self.path == "/v4/task" else 404)
        self.end_headers()
        self.wfile.write(body.encode())

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def metadata_endpoint() -> Iterator[str]:
    """ECS's task metadata endpoint (v4), as a container sees it."""
    server = HTTPServer(("127.0.0.1", 0), _Metadata)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v4"
    server.shutdown()


def test_on_aws_the_task_arn_and_pull_start_come_from_the_task_metadata(metadata_endpoint: str):
    arn, started = task_identity({"ECS_CONTAINER_METADATA_URI_V4": metadata_endpoint})
    assert arn == "arn:aws:ecs:task/c/abc"
    assert started == pytest.approx(1767323045.5)


def test_locally_the_emulator_says_them():
    assert task_identity({"FLOWDECK_TASK_ARN": "arn:local", "FLOWDECK_TASK_STARTED_AT": "12.5"}) == (
        "arn:local",
        12.5,
    )
    assert task_identity({}) == (None, None)


def test_fresh_compute_counts_from_the_task_start_and_says_fresh():
    message = step_message(FreshTask.from_environ(ENVIRON), DEFINITION, {}, None, time.time() - 30)
    usage = compute_usage(message, 2.0)
    assert usage.mode == "fresh"
    assert 30 <= usage.seconds < 40
    assert (usage.vcpu, usage.memory_gb) == (0.5, 1.0)


def test_a_fresh_task_is_billed_one_minute_at_least_and_a_pool_step_by_the_second():
    calculator = RateCardCalculator.default()

    def cost(seconds: float, mode: str) -> Decimal:
        return money(calculator.compute_cost(ComputeUsage(seconds=seconds, mode=mode), "us-east-1"))

    assert cost(5, "fresh") == cost(60, "fresh") == cost(60, "pool") == Decimal("0.000206")
    assert cost(90, "fresh") == cost(90, "pool") == Decimal("0.000309")
    assert cost(5, "pool") == Decimal("0.000017")
