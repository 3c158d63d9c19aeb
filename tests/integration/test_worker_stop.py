"""A pool worker told to stop (ECS scale-in or deploy): it finishes what it holds in time, or hands it back.

The whole Worker runs its poll loop against moto (steps queue, runs and logs tables); its answers
to Step Functions are recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from test_worker import FakeStepFunctions, message

from flowdeck.config import Settings
from flowdeck.constants import WORKER_STOPPED
from flowdeck.messages import StepMessage
from flowdeck.runner.worker import Worker
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

TABLE = "flowdeck-runs-test"  # as in conftest.py
LOGS = "flowdeck-logs-test"
BUCKET = "flowdeck-artifacts-test"


class RunningWorker:
    """A Worker polling in a thread, with its Step Functions answers recorded."""

    def __init__(self, aws: dict[str, Any], tmp_path: Path, stop_seconds: int, agent_uri: str = "") -> None:
        (tmp_path / "workspace").mkdir(exist_ok=True)
        settings = Settings(
            runs_table=TABLE,
            logs_table=LOGS,
            artifacts_bucket=BUCKET,
            steps_queue_url=aws["queue_url"],
            scratch_dir=tmp_path / "scratch",
            workspace=tmp_path / "workspace",
            worker_stop_seconds=stop_seconds,
            ecs_agent_uri=agent_uri,
        )
        self.worker = Worker(settings, concurrency=2)
        self.sfn = FakeStepFunctions()
        self.worker.runner.tokens = TaskTokens(self.sfn)
        self.thread = threading.Thread(target=self.worker.run_forever, args=(1,), daemon=True)
        self.thread.start()
        STARTED.append(self)

    def stop_and_wait(self, timeout: float) -> float:
        """stop() as SIGTERM does; the seconds until the poll loop has ended."""
        began = time.monotonic()
        self.worker.stop()
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "the worker did not leave within its stop timeout"
        return time.monotonic() - began


# Every worker a test started, ended at its teardown: moto's queue URLs repeat from test to test, so
# a worker left polling (a test that failed before its stop) would take the next test's messages.
STARTED: list[RunningWorker] = []


@pytest.fixture(autouse=True)
def no_worker_outlives_its_test() -> Iterator[None]:
    yield
    while STARTED:
        running = STARTED.pop()
        running.worker.shutdown.set()
        running.worker.runner.hand_back()
        running.thread.join(15)


def send(aws: dict[str, Any], step: StepMessage) -> None:
    aws["sqs"].send_message(QueueUrl=aws["queue_url"], MessageBody=step.model_dump_json())


def wait_until_running(store: RunStore, step: str = "build", timeout: float = 20.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = store.get_run_items("r1")[1].get(step)
        if record and record.get("status") == "running":
            return record
        time.sleep(0.05)
    raise AssertionError(f"step {step} never started")


@pytest.fixture
def aws(worker_aws: dict[str, Any]) -> dict[str, Any]:
    return worker_aws


@pytest.fixture
def store(aws: dict[str, Any]) -> RunStore:
    return RunStore(TABLE, aws["ddb"])


def test_a_stopping_worker_finishes_a_step_that_ends_within_its_stop_timeout(aws, store, tmp_path):
    running = RunningWorker(aws, tmp_path, stop_seconds=60)
    send(aws, message(run="sleep 1; echo done"))
    wait_until_running(store)

    running.stop_and_wait(timeout=30)

    record = store.get_run_items("r1")[1]["build"]
    assert (record["status"], record["exit_code"]) == ("succeeded", 0)
    assert [kind for kind, _ in running.sfn.answers()] == ["success"]


def test_a_step_that_cannot_finish_in_time_is_handed_back_for_the_state_machine_to_retry(
    aws, store, tmp_path
):
    # A stop timeout shorter than the hand-back's own reserve: the step is handed back at once.
    running = RunningWorker(aws, tmp_path, stop_seconds=5)
    send(aws, message(run="sleep 60", grace_period=1))
    wait_until_running(store)

    took = running.stop_and_wait(timeout=20)

    assert took < 10  # the process was ended, not waited for
    record = store.get_run_items("r1")[1]["build"]
    # Pending: the state machine's hand-back retrier runs it again, though the step has no retries.
    assert (record["status"], record["attempt#1"]["status"]) == ("pending", "failed")
    assert record["attempt#1"]["error"] == WORKER_STOPPED
    ((kind, answer),) = running.sfn.answers()
    assert (kind, answer["error"]) == ("failure", WORKER_STOPPED)
    assert "another worker" in answer["cause"]


def test_a_step_handed_back_twice_already_fails_for_good(aws, store, tmp_path):
    # Attempts 1 and 2 were handed back (two retries of the state so far); this is the third.
    for attempt in (1, 2):
        started = store.start_attempt("r1", "build", "t", attempt, {"status": "running"})
        assert started is not None
        store.finish_attempt(started, {"status": "pending"}, {"status": "failed", "error": WORKER_STOPPED})
    running = RunningWorker(aws, tmp_path, stop_seconds=5)
    send(aws, message(run="sleep 60", retry_count=2, grace_period=1))
    wait_until_running(store)

    running.stop_and_wait(timeout=20)

    record = store.get_run_items("r1")[1]["build"]
    assert (record["status"], record["attempt#3"]["error"]) == ("failed", WORKER_STOPPED)


def test_messages_received_as_the_stop_comes_are_given_back_at_once(aws, tmp_path):
    running = RunningWorker(aws, tmp_path, stop_seconds=5)
    running.stop_and_wait(timeout=10)
    send(aws, message(run="true"))
    received = aws["sqs"].receive_message(QueueUrl=aws["queue_url"], VisibilityTimeout=30)["Messages"]

    running.worker._give_back(received)

    again = aws["sqs"].receive_message(QueueUrl=aws["queue_url"])
    assert [m["MessageId"] for m in again.get("Messages", [])] == [received[0]["MessageId"]]
