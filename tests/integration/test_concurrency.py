"""Concurrency on moto: idempotent slots, queued runs started in order, rejects change nothing."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from flowdeck.catalog import Catalog
from flowdeck.control.concurrency import (
    ConcurrencyControl,
    ConcurrencyLimit,
    Slot,
)
from flowdeck.definition.models import Concurrency, RuntimeConfig, WorkflowDefinition
from flowdeck.runs.service import RunService, StartRun
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import workflow_status
from tests.integration.conftest import ARN_PREFIX, TABLE, WORKFLOWS

WORKFLOW = "hello"
PAYLOAD = {"inputs": {"name": "x"}, "trigger": "manual", "started_by": "tester"}


def limited(max_runs: int, on_limit: str = "queue") -> WorkflowDefinition:
    """The fixture workflow `hello` with a concurrency limit (its state machine exists on moto)."""
    definition = Catalog.from_dir(WORKFLOWS).get(WORKFLOW)
    limit = Concurrency(max_runs=max_runs, on_limit=on_limit)  # type: ignore[arg-type]
    return definition.model_copy(update={"runtime_config": RuntimeConfig(concurrency=limit)})


@pytest.fixture
def control(flowdeck_aws: tuple[Any, Any]) -> ConcurrencyControl:
    ddb, sfn = flowdeck_aws
    return ConcurrencyControl(RunStore(TABLE, ddb), Executions(ARN_PREFIX, sfn))


def executions(sfn: Any) -> set[str]:
    found = sfn.list_executions(stateMachineArn=ARN_PREFIX + WORKFLOW)["executions"]
    return {e["name"] for e in found}


def status_of(control: ConcurrencyControl, run_id: str) -> str | None:
    run = control.run_item(run_id)
    return None if run is None else run["status"]


def set_status(ddb: Any, run_id: str, status: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Write the run item's status as the state machine (or cancel) would; (old, new) images."""
    answer = ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}},
        UpdateExpression="SET #s = :s, workflow_status = :ws, run_id = :id, workflow = :wf, kind = :k",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={
            ":s": {"S": status},
            ":ws": {"S": workflow_status(WORKFLOW, status)},
            ":id": {"S": run_id},
            ":wf": {"S": WORKFLOW},
            ":k": {"S": "run"},
        },
        ReturnValues="ALL_OLD",
    )
    old = {k: next(iter(v.values())) for k, v in answer.get("Attributes", {}).items()}
    return old, old | {"status": status, "run_id": run_id, "workflow": WORKFLOW}


def test_acquire_twice_for_one_run_is_one_slot_and_the_limit_refuses_others(
    control: ConcurrencyControl,
) -> None:
    assert control.acquire(WORKFLOW, "r1", 1) is Slot.NEW
    assert control.acquire(WORKFLOW, "r1", 1) is Slot.HELD
    assert control.acquire(WORKFLOW, "r2", 1) is None

    assert control.slots(WORKFLOW) == ({"r1"}, 1)


def test_release_twice_is_fine_and_never_creates_a_slots_item(control: ConcurrencyControl) -> None:
    assert control.release("never-limited", "r1") is False
    assert control.slots("never-limited") is None

    control.acquire(WORKFLOW, "r1", 1)
    assert control.release(WORKFLOW, "r1") is True
    assert control.release(WORKFLOW, "r1") is True
    assert control.slots(WORKFLOW) == (set(), 1)
    assert control.acquire(WORKFLOW, "r2", 1) is Slot.NEW


@pytest.mark.usefixtures("atomic_item_writes")  # without it 3 of 12 threads won a limit of 2 on moto
def test_concurrent_acquires_from_threads_never_exceed_the_limit(control: ConcurrencyControl) -> None:
    barrier = threading.Barrier(12)
    won: list[str] = []

    def take(run_id: str) -> None:
        barrier.wait()
        if control.acquire(WORKFLOW, run_id, 2) is not None:
            won.append(run_id)

    threads = [threading.Thread(target=take, args=(f"r{i}",)) for i in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    holders, _ = control.slots(WORKFLOW) or (set(), 0)
    assert len(won) == 2
    assert holders == set(won)


def test_over_the_limit_runs_queue_and_start_in_order_as_slots_free(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl
) -> None:
    ddb, sfn = flowdeck_aws
    definition = limited(1)
    answers = [control.start(definition, run_id, PAYLOAD) for run_id in ("r1", "r2", "r3")]

    assert [a["status"] for a in answers] == ["running", "queued", "queued"]
    assert executions(sfn) == {"r1"}
    queued = control.run_item("r2") or {}
    assert queued["status"] == "queued"
    assert queued["workflow_status"] == "hello#queued"
    assert [s["id"] for s in queued["plan"]] == ["greet"]
    assert [r["run_id"] for r in control.queued_runs(WORKFLOW)] == ["r2", "r3"]

    set_status(ddb, "r1", "running")
    ended = set_status(ddb, "r1", "succeeded")
    control.on_run_change(*ended)
    assert executions(sfn) == {"r1", "r2"}
    assert control.slots(WORKFLOW) == ({"r2"}, 1)

    # The same change delivered again (streams are at least once) starts nothing more.
    control.on_run_change(*ended)
    assert executions(sfn) == {"r1", "r2"}
    assert control.slots(WORKFLOW) == ({"r2"}, 1)


def test_a_queued_run_cancelled_never_starts_and_the_next_one_does(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl
) -> None:
    ddb, sfn = flowdeck_aws
    definition = limited(1)
    for run_id in ("r1", "r2", "r3"):
        control.start(definition, run_id, PAYLOAD)

    control.on_run_change(*set_status(ddb, "r2", "cancelled"))  # queued -> cancelled: no slot to free
    assert executions(sfn) == {"r1"}
    control.on_run_change(*set_status(ddb, "r1", "failed"))

    assert executions(sfn) == {"r1", "r3"}
    assert status_of(control, "r2") == "cancelled"
    assert control.slots(WORKFLOW) == ({"r3"}, 1)


def test_promote_of_a_run_cancelled_after_it_was_read_gives_its_slot_back(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb, sfn = flowdeck_aws
    definition = limited(1)
    control.start(definition, "r1", PAYLOAD)
    control.start(definition, "r2", PAYLOAD)
    stale = control.queued_runs(WORKFLOW)  # read while r2 is still queued
    set_status(ddb, "r2", "cancelled")
    control.release(WORKFLOW, "r1")
    monkeypatch.setattr(control, "queued_runs", lambda workflow: stale)

    assert control.promote(WORKFLOW) == []
    assert executions(sfn) == {"r1"}
    assert control.slots(WORKFLOW) == (set(), 1)


def test_reject_answers_conflict_and_records_nothing(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl
) -> None:
    _, sfn = flowdeck_aws
    definition = limited(1, "reject")
    control.start(definition, "r1", PAYLOAD)

    with pytest.raises(ConcurrencyLimit) as refused:
        control.start(definition, "r2", PAYLOAD)

    assert refused.value.status == 409
    assert refused.value.code == "ConcurrencyLimit"
    assert "max_runs" in refused.value.message
    assert control.run_item("r2") is None
    assert executions(sfn) == {"r1"}
    assert control.slots(WORKFLOW) == ({"r1"}, 1)


def test_one_idempotency_key_gives_one_run_also_when_queued(
    flowdeck_aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    ddb, sfn = flowdeck_aws
    catalog = Catalog.from_dir(WORKFLOWS)
    monkeypatch.setattr(catalog, "get", lambda name: limited(1))
    service = RunService(catalog, RunStore(TABLE, ddb), Executions(ARN_PREFIX, sfn))
    request = StartRun(inputs={"name": "x"}, idempotency_key="deploy-42")

    first_running = service.start_run(WORKFLOW, StartRun(inputs={"name": "x"}), "tester")
    first = service.start_run(WORKFLOW, request, "tester")
    again = service.start_run(WORKFLOW, request, "tester")

    assert first_running["status"] == "running"
    assert (first["status"], first["created"]) == ("queued", True)
    assert (again["run_id"], again["status"], again["created"]) == (first["run_id"], "queued", False)
    assert [
        r["run_id"] for r in ConcurrencyControl(service.runs, service.executions).queued_runs(WORKFLOW)
    ] == [first["run_id"]]


def test_unlimited_workflows_take_no_slot(flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl) -> None:
    _, sfn = flowdeck_aws
    definition = Catalog.from_dir(WORKFLOWS).get(WORKFLOW)

    answers = [control.start(definition, run_id, PAYLOAD) for run_id in ("r1", "r2", "r3")]

    assert {a["status"] for a in answers} == {"running"}
    assert executions(sfn) == {"r1", "r2", "r3"}
    assert control.slots(WORKFLOW) is None


def test_a_holder_whose_execution_ended_unrecorded_frees_its_slot_when_runs_wait(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl
) -> None:
    ddb, sfn = flowdeck_aws
    definition = limited(1)
    control.start(definition, "r1", PAYLOAD)
    arn = sfn.list_executions(stateMachineArn=ARN_PREFIX + WORKFLOW)["executions"][0]["executionArn"]
    set_status(ddb, "r1", "running")
    ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "r1"}, "sk": {"S": "RUN"}},
        UpdateExpression="SET execution_arn = :arn",
        ExpressionAttributeValues={":arn": {"S": arn}},
    )
    assert control.start(definition, "r2", PAYLOAD)["status"] == "queued"  # r1 really runs

    sfn.stop_execution(executionArn=arn)  # aborted from the console: r1's record stays running
    third = control.start(definition, "r3", PAYLOAD)

    assert executions(sfn) == {"r1", "r2"}
    assert third["status"] == "queued"
    assert control.slots(WORKFLOW) == ({"r2"}, 1)
    assert status_of(control, "r1") == "running"
