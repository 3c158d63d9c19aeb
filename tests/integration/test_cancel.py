"""RunCanceller on moto: one conditional write decides, waiting steps are cancelled, cleanup is queued."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import boto3
import pytest

from flowdeck.catalog import Catalog
from flowdeck.control.cancel import CancelRun, CancelUnderWay, RunCanceller
from flowdeck.control.cancelling import CancelSettler
from flowdeck.errors import Conflict, RunNotFound
from flowdeck.stores.runs import RunStore
from tests.integration.conftest import ARN_PREFIX, TABLE

E2E_WORKFLOWS = Path(__file__).parent.parent / "e2e" / "workflows"


@pytest.fixture
def canceller(runs_ddb: Any, tmp_path: Path) -> tuple[RunCanceller, Any]:
    """A canceller over moto (inside runs_ddb's mock) and the steps queue it sends cleanups to."""
    shutil.copy(E2E_WORKFLOWS / "cancel-cleanup.yaml", tmp_path / "cancel-cleanup.yaml")
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="steps")["QueueUrl"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    runs = RunStore(TABLE, runs_ddb)
    return RunCanceller(Catalog.from_dir(tmp_path), runs, sfn, sqs, queue_url, ARN_PREFIX), sqs


def seed(ddb: Any, run_id: str, status: str, steps: dict[str, dict[str, str]]) -> None:
    item = {"pk": run_id, "sk": "RUN", "status": status, "workflow": "cancel-cleanup"}
    ddb.put_item(TableName=TABLE, Item={k: {"S": v} for k, v in item.items()})
    for step, fields in steps.items():
        attributes = {"pk": run_id, "sk": f"STEP#{step}"} | fields
        ddb.put_item(TableName=TABLE, Item={k: {"S": v} for k, v in attributes.items()})


def run_item(ddb: Any, run_id: str) -> dict[str, Any]:
    item = ddb.get_item(TableName=TABLE, Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}})["Item"]
    return {k: next(iter(v.values())) for k, v in item.items()}


def test_a_waiting_run_is_cancelled_and_its_waiting_step_too(runs_ddb: Any, canceller: Any) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r1", "waiting", {"approve": {"status": "waiting", "wait_token": "token-1"}})

    answer = cancel.cancel("r1", CancelRun(reason="not today"), caller="jane")

    assert (answer.status, answer.mode, answer.reason) == ("cancelled", "graceful", "not today")
    run = run_item(runs_ddb, "r1")
    assert (run["status"], run["cancel_mode"], run["cancelled_by"]) == ("cancelled", "graceful", "jane")
    assert run["workflow_status"] == "cancel-cleanup#cancelled"
    step = RunStore(TABLE, runs_ddb).get_run_items("r1")[1]["approve"]
    assert (step["status"], step["error"], step["cause"]) == ("cancelled", "Cancelled", "not today")


def test_a_queued_run_without_an_execution_is_cancelled(runs_ddb: Any, canceller: Any) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r2", "queued", {})

    answer = cancel.cancel("r2", CancelRun(mode="force"), caller="jane")

    assert answer.reason == "cancelled by jane"
    assert run_item(runs_ddb, "r2")["status"] == "cancelled"


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "timed_out"])
def test_a_finished_run_is_a_conflict_and_unchanged(runs_ddb: Any, canceller: Any, status: str) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r3", status, {})

    with pytest.raises(Conflict, match=f"run r3 is already {status}"):
        cancel.cancel("r3", CancelRun(), caller="jane")

    assert "cancel_mode" not in run_item(runs_ddb, "r3")


def test_an_unknown_run_is_not_found(canceller: Any) -> None:
    cancel, _ = canceller
    with pytest.raises(RunNotFound):
        cancel.cancel("nope", CancelRun(), caller="jane")


def test_cleanup_mode_queues_one_cleanup_message_with_the_declared_cleanups(
    runs_ddb: Any, canceller: Any
) -> None:
    cancel, sqs = canceller
    seed(runs_ddb, "r4", "running", {"create": {"status": "succeeded"}})

    answer = cancel.cancel("r4", CancelRun(mode="cleanup"), caller="jane")

    assert answer.cleanup_status == "pending"
    assert run_item(runs_ddb, "r4")["cleanup_status"] == "pending"
    received = sqs.receive_message(QueueUrl=cancel.queue_url, MaxNumberOfMessages=10)["Messages"]
    assert len(received) == 1
    body = json.loads(received[0]["Body"])
    assert (body["type"], body["run_id"], body["workflow"]) == ("cleanup", "r4", "cancel-cleanup")
    assert [s["step"] for s in body["steps"]] == ["create", "apply", "hold"]
    assert body["settle_seconds"] == 30


def test_a_cleanup_that_cannot_be_queued_is_shown_failed(runs_ddb: Any, canceller: Any) -> None:
    cancel, sqs = canceller
    seed(runs_ddb, "r5", "running", {})
    cancel.queue_url = sqs.get_queue_url(QueueName="steps")["QueueUrl"].replace("/steps", "/gone")

    answer = cancel.cancel("r5", CancelRun(mode="cleanup"), caller="jane")

    assert answer.cleanup_status == "failed"
    run = run_item(runs_ddb, "r5")
    assert (run["status"], run["cleanup_status"]) == ("cancelled", "failed")
    assert run["cleanup_error"].startswith("the cleanup could not be queued")


def test_a_run_with_a_running_step_keeps_its_status_until_the_step_has_ended(
    runs_ddb: Any, canceller: Any
) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r6", "running", {"hold": {"status": "running"}})

    answer = cancel.cancel("r6", CancelRun(reason="stop it"), caller="jane")

    # The step's process still runs: the run is not cancelled yet, and says a cancel is under way.
    assert (answer.status, answer.mode) == ("running", "graceful")
    assert answer.cancel_requested_at
    run = run_item(runs_ddb, "r6")
    assert (run["status"], run["cancel_mode"], run["cancelled_by"]) == ("running", "graceful", "jane")
    assert "ended_at" not in run
    settler = CancelSettler(RunStore(TABLE, runs_ddb))
    running = {"pk": "r6", "sk": "STEP#hold", "status": "running"}
    ended = running | {"status": "cancelled"}
    # Stream records arrive at least once: a step change that is not an end settles nothing.
    settler.on_step_change(None, running)
    assert run_item(runs_ddb, "r6")["status"] == "running"
    runs_ddb.put_item(TableName=TABLE, Item={k: {"S": v} for k, v in ended.items()})
    settler.on_step_change(running, ended)
    settler.on_step_change(running, ended)
    run = run_item(runs_ddb, "r6")
    assert run["status"] == "cancelled"
    assert run["ended_at"] >= answer.cancel_requested_at


def test_a_second_cancel_while_one_is_under_way_is_a_conflict_saying_what_is_under_way(
    runs_ddb: Any, canceller: Any
) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r7", "running", {"hold": {"status": "running"}})
    first = cancel.cancel("r7", CancelRun(), caller="jane")

    for mode in ("graceful", "cleanup"):
        with pytest.raises(CancelUnderWay) as refused:
            cancel.cancel("r7", CancelRun(mode=mode), caller="joe")
        assert refused.value.status == 409
        assert refused.value.message == (
            f"run r7 is already being cancelled (graceful, asked by jane at {first.cancel_requested_at}); "
            "ask with mode force to kill its steps at once"
        )
    run = run_item(runs_ddb, "r7")
    assert (run["cancel_mode"], run["cancelled_by"], run["status"]) == ("graceful", "jane", "running")
    assert "cleanup_status" not in run


def test_a_forced_second_cancel_escalates_a_graceful_one_once(runs_ddb: Any, canceller: Any) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r8", "running", {"hold": {"status": "running"}})
    cancel.cancel("r8", CancelRun(reason="first"), caller="jane")

    escalated = cancel.cancel("r8", CancelRun(mode="force"), caller="joe")

    assert (escalated.status, escalated.mode, escalated.escalated) == ("running", "force", True)
    run = run_item(runs_ddb, "r8")
    assert (run["cancel_mode"], run["cancel_escalated_by"], run["cancel_reason"]) == ("force", "joe", "first")
    with pytest.raises(CancelUnderWay, match="its steps are being killed"):
        cancel.cancel("r8", CancelRun(mode="force"), caller="joe")


def test_a_cleanup_cancel_reads_cancelled_only_once_its_cleanup_has_ended(
    runs_ddb: Any, canceller: Any
) -> None:
    cancel, _ = canceller
    seed(runs_ddb, "r9", "running", {"create": {"status": "succeeded"}})

    answer = cancel.cancel("r9", CancelRun(mode="cleanup"), caller="jane")

    # No step runs, but the cleanup is still to run: not cancelled yet.
    assert (answer.status, answer.cleanup_status) == ("running", "pending")
    settler = CancelSettler(RunStore(TABLE, runs_ddb))
    settler.on_run_change(None, run_item(runs_ddb, "r9"))
    assert run_item(runs_ddb, "r9")["status"] == "running"
    runs_ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "r9"}, "sk": {"S": "RUN"}},
        UpdateExpression="SET cleanup_status = :done",
        ExpressionAttributeValues={":done": {"S": "succeeded"}},
    )
    settler.on_run_change(None, run_item(runs_ddb, "r9"))
    run = run_item(runs_ddb, "r9")
    assert (run["status"], run["cleanup_status"]) == ("cancelled", "succeeded")
