"""Steps waiting in the steps queue while every worker slot is busy stay alive (flowdeck.runner.queue_keeper).

Found by bench/load.py: with 100 runs started at once, steps whose message waited longer than the
heartbeat in the queue failed WorkerLost although no worker was lost.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck.config import Settings
from flowdeck.local.stack import REGION, STATE_MACHINE_ROLE
from flowdeck.runner.queue_keeper import QueueKeeper
from flowdeck.runner.step_runner import StepRunner
from flowdeck.runner.worker import Worker
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens
from tests.emulator_process import emulator_client, emulator_process
from tests.integration.test_worker import TABLE, FakeStepFunctions, Lines, message

HEARTBEAT_SECONDS = 4
KEEP_EVERY = 1.0


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    """The local AWS emulator (moto's server with its Step Functions executor), as the local stack runs it."""
    with emulator_process() as endpoint:
        yield endpoint


def make_queues(sqs: Any) -> tuple[Any, str, str]:
    """(sqs, steps queue url, dead-letter queue url): a fresh pair with the local stack's redrive policy."""
    name = f"steps-{time.monotonic_ns()}"
    dlq = sqs.create_queue(QueueName=f"{name}-dlq")["QueueUrl"]
    dlq_arn = sqs.get_queue_attributes(QueueUrl=dlq, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = sqs.create_queue(
        QueueName=name,
        Attributes={"RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"})},
    )["QueueUrl"]
    return sqs, url, dlq


@pytest.fixture
def emulator_queues(emulator: str) -> tuple[Any, str, str]:
    """Queues in the emulator, where Step Functions' executor sends its step messages."""
    return make_queues(emulator_client(emulator, "sqs"))


@pytest.fixture
def queues() -> Iterator[tuple[Any, str, str]]:
    """Queues on moto in this process: the keeper's own behaviour needs no Step Functions."""
    with mock_aws():
        yield make_queues(boto3.client("sqs", region_name=REGION))


def waiting_step(url: str, heartbeat: int) -> dict[str, Any]:
    """One pool step as the compiler dispatches it: a step message that waits for its task token."""
    body = json.loads(message().model_dump_json(exclude={"token"})) | {"token.$": "$$.Task.Token"}
    return {
        "StartAt": "Step",
        "States": {
            "Step": {
                "Type": "Task",
                "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
                "Parameters": {
                    "QueueUrl": url,
                    "MessageBody": body,
                },
                "HeartbeatSeconds": heartbeat,
                "TimeoutSeconds": 120,
                "End": True,
            }
        },
    }


def execution_status(sfn: Any, arn: str, timeout: float = 30) -> str:
    deadline = time.monotonic() + timeout
    while (status := sfn.describe_execution(executionArn=arn)["status"]) == "RUNNING":
        if time.monotonic() > deadline:
            return status
        time.sleep(0.2)
    return str(status)


def take_one(sqs: Any, url: str) -> dict[str, Any]:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        messages = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=1, WaitTimeSeconds=1).get(
            "Messages", []
        )
        if messages:
            sqs.delete_message(QueueUrl=url, ReceiptHandle=messages[0]["ReceiptHandle"])
            return dict(messages[0])
    raise AssertionError("no message came")


def test_a_step_waiting_in_the_queue_longer_than_its_heartbeat_is_not_lost_while_kept(
    emulator: str, emulator_queues: tuple[Any, str, str]
) -> None:
    # Given a state machine whose step waits in the queue (every worker busy) for 2.5 heartbeats
    sqs, url, _ = emulator_queues
    sfn = emulator_client(emulator, "stepfunctions")
    machine = sfn.create_state_machine(
        name=f"keeper-{time.monotonic_ns()}",
        definition=json.dumps(waiting_step(url, HEARTBEAT_SECONDS)),
        roleArn=STATE_MACHINE_ROLE,
    )["stateMachineArn"]
    keeper = QueueKeeper(sqs, url, TaskTokens(sfn), busy=lambda: True, every=KEEP_EVERY)
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]

    # When the keeper runs while it waits, and a worker then takes it and answers
    with keeper:
        time.sleep(HEARTBEAT_SECONDS * 2.5)
    taken = take_one(sqs, url)
    TaskTokens(sfn).succeed(json.loads(taken["Body"])["token"], {"status": "succeeded"})

    # Then the step was never timed out: the execution succeeds
    assert execution_status(sfn, arn) == "SUCCEEDED"


def test_without_the_keeper_the_same_wait_fails_the_step_at_its_heartbeat(
    emulator: str, emulator_queues: tuple[Any, str, str]
) -> None:
    # The control: what the keeper prevents (a step lost for waiting in the queue).
    sqs, url, _ = emulator_queues
    sfn = emulator_client(emulator, "stepfunctions")
    machine = sfn.create_state_machine(
        name=f"unkept-{time.monotonic_ns()}",
        definition=json.dumps(waiting_step(url, HEARTBEAT_SECONDS)),
        roleArn=STATE_MACHINE_ROLE,
    )["stateMachineArn"]
    arn = sfn.start_execution(stateMachineArn=machine)["executionArn"]
    time.sleep(HEARTBEAT_SECONDS * 2.5)
    taken = take_one(sqs, url)

    assert not TaskTokens(sfn).succeed(json.loads(taken["Body"])["token"], {"status": "succeeded"})
    assert execution_status(sfn, arn) == "FAILED"


class FakeTokens:
    """Heartbeats recorded; tokens in `gone` answer as Step Functions does for a task no longer waiting."""

    def __init__(self, gone: set[str] | None = None) -> None:
        self.beats: list[str] = []
        self.gone = gone or set()

    def heartbeat(self, token: str) -> bool:
        if token in self.gone:
            return False
        self.beats.append(token)
        return True


def step_body(token: str) -> str:
    return message().model_copy(update={"token": token}).model_dump_json()


def drain(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message a worker would now receive, with its receive count."""
    got: list[dict[str, Any]] = []
    while True:
        batch = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, AttributeNames=["ApproximateReceiveCount"]
        ).get("Messages", [])
        if not batch:
            return got
        got += batch
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(batch)],
        )


def test_every_waiting_step_is_beaten_once_per_round_and_none_reaches_the_dead_letter_queue(
    queues: tuple[Any, str, str],
) -> None:
    # Given 12 steps waiting and a cleanup waiting among them
    sqs, url, dlq = queues
    tokens = [f"token-{i}" for i in range(12)]
    for token in tokens:
        sqs.send_message(QueueUrl=url, MessageBody=step_body(token))
    cleanup = json.dumps({"type": "cleanup", "run_id": "r1"})
    sqs.send_message(QueueUrl=url, MessageBody=cleanup)
    fake = FakeTokens()
    keeper = QueueKeeper(sqs, url, fake, busy=lambda: True)  # type: ignore[arg-type]

    # When the keeper goes round four times (more than the queue's maxReceiveCount of 3)
    rounds = [keeper.keep_waiting() for _ in range(4)]

    # Then each round beat every step once, and every message is still there for a worker, first time
    assert rounds == [13] * 4
    assert sorted(fake.beats) == sorted(tokens * 4)
    waiting = drain(sqs, url)
    assert sorted(m["Body"] for m in waiting) == sorted([step_body(t) for t in tokens] + [cleanup])
    assert {m["Attributes"]["ApproximateReceiveCount"] for m in waiting} == {"1"}
    assert drain(sqs, dlq) == []


def test_a_waiting_step_whose_run_no_longer_waits_is_dropped(queues: tuple[Any, str, str]) -> None:
    sqs, url, _ = queues
    sqs.send_message(QueueUrl=url, MessageBody=step_body("cancelled"))
    sqs.send_message(QueueUrl=url, MessageBody=step_body("alive"))
    keeper = QueueKeeper(sqs, url, FakeTokens(gone={"cancelled"}), busy=lambda: True)  # type: ignore[arg-type]

    keeper.keep_waiting()

    assert [json.loads(m["Body"])["token"] for m in drain(sqs, url)] == ["alive"]


def test_a_worker_with_a_free_slot_leaves_the_queue_alone(queues: tuple[Any, str, str]) -> None:
    # A free slot takes messages itself: keeping them would only delay them.
    sqs, url, _ = queues
    sqs.send_message(QueueUrl=url, MessageBody=step_body("t1"))
    fake = FakeTokens()
    keeper = QueueKeeper(sqs, url, fake, busy=lambda: False)  # type: ignore[arg-type]

    assert keeper.beat()

    assert fake.beats == []
    assert [m["Attributes"]["ApproximateReceiveCount"] for m in drain(sqs, url)] == ["1"]


def test_a_failing_queue_does_not_stop_the_keeper(queues: tuple[Any, str, str]) -> None:
    sqs, url, _ = queues
    missing = url.rsplit("/", 1)[0] + "/missing"
    keeper = QueueKeeper(sqs, missing, FakeTokens(), busy=lambda: True)  # type: ignore[arg-type]

    assert keeper.beat()  # logged; the next round tries again


def test_a_worker_beats_at_once_when_it_takes_a_step(runs_ddb: Any, tmp_path: Path) -> None:
    # A step taken after a long wait in the queue has little heartbeat time left: the first beat
    # must not wait a whole interval (10 s by default) after the worker took it.
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    sfn = FakeStepFunctions()
    runner = StepRunner(settings, RunStore(TABLE, runs_ddb), sfn)
    try:
        result = runner.handle(message(heartbeat_seconds=30, command=[sys.executable, "-c", "pass"]), Lines())
    finally:
        runner.io.shutdown(wait=True)

    assert result is not None and result.status == "succeeded"
    # The step took a fraction of the 10 s interval: only a beat at once explains a heartbeat.
    assert ("heartbeat", {"taskToken": message().token}) in sfn.calls


def test_a_busy_worker_keeps_the_step_waiting_behind_it_alive(runs_ddb: Any, tmp_path: Path) -> None:
    # Given a worker with one slot, a step that runs for a few seconds and one more step behind it
    sqs, url, _ = make_queues(boto3.client("sqs", region_name=REGION))
    (tmp_path / "workspace").mkdir()
    settings = Settings(
        runs_table=TABLE,
        steps_queue_url=url,
        scratch_dir=tmp_path / "scratch",
        workspace=tmp_path / "workspace",
        worker_poll_seconds=1,
    )
    worker = Worker(settings, concurrency=1)
    sfn = FakeStepFunctions()
    worker.tokens = worker.keeper.tokens = worker.runner.tokens = TaskTokens(sfn)
    worker.keeper.every = 0.5
    slow = message(step="slow", command=[sys.executable, "-c", "import time; time.sleep(4)"])
    behind = message(step="behind", command=[sys.executable, "-c", "pass"])
    sqs.send_message(QueueUrl=url, MessageBody=slow.model_copy(update={"token": "slow"}).model_dump_json())
    time.sleep(0.1)  # moto hands messages out in the order they were sent
    sqs.send_message(
        QueueUrl=url, MessageBody=behind.model_copy(update={"token": "behind"}).model_dump_json()
    )

    # When the worker runs both
    thread = threading.Thread(target=worker.run_forever, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    try:
        while ("success", {"taskToken": "behind"}) not in [
            (k, {"taskToken": a["taskToken"]}) for k, a in sfn.calls
        ]:
            assert time.monotonic() < deadline, sfn.calls
            time.sleep(0.1)
    finally:  # never left polling: moto's queue URLs repeat, so it would take the next test's messages
        worker.shutdown.set()
        thread.join(10)

    # Then the step behind was beaten while the slow one still ran (before the slow one's answer)
    calls = [(kind, args["taskToken"]) for kind, args in sfn.calls]
    assert calls.index(("heartbeat", "behind")) < calls.index(("success", "slow")), calls
