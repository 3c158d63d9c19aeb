"""Runs are readable the moment their start answers, and the answers match the record (SPEC §2)."""

from __future__ import annotations

import json
import threading
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.dynamodb.models import DynamoDBBackend

from flowdeck.catalog import Catalog
from flowdeck.control.concurrency import ConcurrencyControl, start_record
from flowdeck.local.emulator import ITEM_WRITES, serialized
from flowdeck.status import RunStatus
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from statemachines import compile_workflow
from tests.integration.conftest import ARN_PREFIX, TABLE, WORKFLOWS
from tests.integration.test_api import HELLO_DEFAULTS, Api
from tests.integration.test_concurrency import PAYLOAD, WORKFLOW, limited, set_status

HELLO_INPUTS = HELLO_DEFAULTS | {"name": "x"}


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    return Api(*flowdeck_aws, lambda_context)


@pytest.fixture
def control(flowdeck_aws: tuple[Any, Any]) -> ConcurrencyControl:
    ddb, sfn = flowdeck_aws
    return ConcurrencyControl(RunStore(TABLE, ddb), Executions(ARN_PREFIX, sfn))


def assert_just_started(run: dict[str, Any], status: str, trigger: str, started_by: str) -> None:
    """What a run reads before its execution has recorded anything."""
    assert run["status"] == status
    assert (run["trigger"], run["started_by"]) == (trigger, started_by)
    assert run["steps"] and all(step["status"] == "pending" for step in run["steps"])
    assert run["started_at"] and run["cost_usd"] == "0"


# -- readable at once ---------------------------------------------------------------------------
def test_an_api_start_is_readable_at_once_with_its_plan_trigger_and_inputs(api: Api) -> None:
    # moto's executor is off here: nothing but the start path can have recorded the run.
    status, started = api.call("POST", "/workflows/hello/runs", body=json.dumps({"inputs": {"name": "x"}}))
    assert status == 202

    status, run = api.call("GET", f"/runs/{started['run_id']}")

    assert status == 200, run
    assert_just_started(run, "running", "manual", "alice")
    assert run["inputs"] == HELLO_INPUTS
    assert [s["id"] for s in run["steps"]] == ["greet"]
    status, page = api.call("GET", "/runs", query={"workflow": "hello"})
    assert [r["run_id"] for r in page["runs"]] == [started["run_id"]]


def test_starts_from_many_threads_are_each_readable_at_once(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DynamoDB checks a condition and writes atomically; moto does not unless serialized.
    lock = threading.RLock()
    for name in ITEM_WRITES:
        monkeypatch.setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name), lock))
    # A Lambda environment handles one event at a time (powertools keeps the event on the app), so
    # each call is whole while the six clients' starts and reads interleave.
    handler_lock = threading.Lock()
    barrier = threading.Barrier(6)
    misses: list[tuple[str, int]] = []
    read: list[str] = []

    def start_and_read(thread: int) -> None:
        barrier.wait()
        for _ in range(5):
            body = json.dumps({"inputs": {"name": f"t{thread}"}})
            with handler_lock:
                status, started = api.call("POST", "/workflows/hello/runs", body=body)
            assert status == 202
            with handler_lock:
                status, run = api.call("GET", f"/runs/{started['run_id']}")
            if status != 200 or run["status"] != "running":
                misses.append((started["run_id"], status))
            read.append(started["run_id"])

    threads = [threading.Thread(target=start_and_read, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(read)) == 30
    assert misses == []


def test_a_retry_is_readable_at_once_linked_to_the_run_it_retries(api: Api) -> None:
    api.seed_failed_run("r1")

    status, retried = api.call("POST", "/runs/r1/retry", body="{}")
    assert status == 202, retried
    status, run = api.call("GET", f"/runs/{retried['run_id']}")

    assert status == 200, run
    assert_just_started(run, "running", "retry", "alice")
    assert run["retry_of"] == "r1"


def test_a_queued_run_reads_queued_then_running_the_moment_it_is_promoted(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl
) -> None:
    ddb, _ = flowdeck_aws
    definition = limited(1)
    control.start(definition, "r1", PAYLOAD)
    assert control.start(definition, "r2", PAYLOAD)["status"] == "queued"
    queued = control.run_item("r2") or {}
    assert queued["status"] == "queued" and queued["started_at"] == queued["queued_at"]

    set_status(ddb, "r1", "running")
    control.on_run_change(*set_status(ddb, "r1", "succeeded"))

    promoted = control.run_item("r2") or {}
    # Running before its execution recorded anything (no execution_arn yet), started when promoted.
    assert promoted["status"] == "running" and promoted["workflow_status"] == "hello#running"
    assert "execution_arn" not in promoted
    assert promoted["started_at"] == promoted["promoted_at"] > promoted["queued_at"]


# -- a start whose execution could not start ----------------------------------------------------
def test_a_run_whose_execution_cannot_start_is_recorded_failed_with_the_reason(
    api: Api, control: ConcurrencyControl, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*_: Any, **__: Any) -> None:
        raise ClientError(
            {"Error": {"Code": "StateMachineDoesNotExist", "Message": "gone"}}, "StartExecution"
        )

    monkeypatch.setattr(control.executions.client, "start_execution", refuse)
    definition = limited(1)

    with pytest.raises(ClientError):
        control.start(definition, "r1", PAYLOAD)

    run = control.run_item("r1") or {}
    assert run["status"] == "failed" and run["error"] == "StartFailed"
    assert "StateMachineDoesNotExist" in run["error_cause"] and run["ended_at"]
    # Its slot is free again, and a repeat answers how it ended instead of starting it.
    assert control.slots(WORKFLOW) == (set(), 1)
    assert control.start(definition, "r1", PAYLOAD)["status"] == "failed"


# -- either order of arrival --------------------------------------------------------------------
def record_run_start(ddb: Any, run_id: str, payload: dict[str, Any], now: str) -> bool:
    """Apply the compiled RecordRunStart to moto as Step Functions would; False if its condition failed."""
    definition = Catalog.from_dir(WORKFLOWS).get(WORKFLOW)
    parameters = compile_workflow(definition)["States"]["RecordRunStart"]["Parameters"]
    context = {
        "$$.Execution.Name": run_id,
        "$$.Execution.Id": f"{ARN_PREFIX.replace('stateMachine', 'execution')}{WORKFLOW}:{run_id}",
        "$$.State.EnteredTime": now,
        "$.meta.trigger": payload["trigger"],
        "$.meta.started_by": payload["started_by"],
        "$.meta.trigger_detail": payload.get("trigger_detail", ""),
    }

    def resolve(value: dict[str, Any]) -> dict[str, Any]:
        if "S.$" not in value:
            return value
        path = value["S.$"]
        if path.startswith("States.JsonToString"):
            # The inputs with the workflow's defaults merged, compact, as the intrinsic writes them.
            return {"S": json.dumps(HELLO_INPUTS, separators=(",", ":"))}
        return {"S": context[path]}

    try:
        ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}},
            UpdateExpression=parameters["UpdateExpression"],
            ConditionExpression=parameters["ConditionExpression"],
            ExpressionAttributeNames=parameters["ExpressionAttributeNames"],
            ExpressionAttributeValues={
                k: resolve(v) for k, v in parameters["ExpressionAttributeValues"].items()
            },
        )
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True


def test_the_start_record_and_record_run_start_give_the_same_item_in_either_order(
    flowdeck_aws: tuple[Any, Any],
) -> None:
    ddb, _ = flowdeck_aws
    runs = RunStore(TABLE, ddb)
    definition = Catalog.from_dir(WORKFLOWS).get(WORKFLOW)
    payload = {"inputs": HELLO_INPUTS, "trigger": "webhook", "started_by": "webhook:deploy-hook"}
    now = "2026-12-06T04:00:00.000Z"

    runs.record_start("first", start_record(definition, "first", payload, RunStatus.RUNNING, now))
    assert record_run_start(ddb, "first", payload, now)
    assert record_run_start(ddb, "second", payload, now)
    runs.record_start("second", start_record(definition, "second", payload, RunStatus.RUNNING, now))
    # Each again (at-least-once delivery, a repeated start): nothing changes.
    assert record_run_start(ddb, "first", payload, now)
    runs.record_start("second", start_record(definition, "second", payload, RunStatus.RUNNING, now))

    def item(run_id: str) -> dict[str, Any]:
        found = runs.get_run_items(run_id)[0] or {}
        return {k: v for k, v in found.items() if k not in ("pk", "run_id", "execution_arn")}

    assert item("first") == item("second")
    assert item("first")["trigger"] == "webhook" and item("first")["status"] == "running"
    assert [s["id"] for s in item("first")["plan"]] == ["greet"]
    assert (runs.get_run_items("first")[0] or {})["execution_arn"].endswith(":first")


def test_record_run_start_never_revives_a_run_that_ended_before_it_arrived(
    flowdeck_aws: tuple[Any, Any],
) -> None:
    ddb, _ = flowdeck_aws
    runs = RunStore(TABLE, ddb)
    definition = Catalog.from_dir(WORKFLOWS).get(WORKFLOW)
    runs.record_start("r1", start_record(definition, "r1", PAYLOAD, RunStatus.RUNNING))
    assert runs.record_start_failed("r1", WORKFLOW, "StartExecution timed out", "2026-12-06T04:00:01Z")

    assert not record_run_start(ddb, "r1", PAYLOAD, "2026-12-06T04:00:02.000Z")
    assert (runs.get_run_items("r1")[0] or {})["status"] == "failed"


# -- answers that match the record --------------------------------------------------------------
def test_a_repeated_start_answers_the_status_the_run_has_now(api: Api) -> None:
    body = json.dumps({"inputs": {"name": "x"}, "idempotency_key": "deploy-42"})
    status, first = api.call("POST", "/workflows/hello/runs", body=body)
    assert (status, first["status"]) == (202, "running")
    api.ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": first["run_id"]}, "sk": {"S": "RUN"}},
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues={":s": {"S": "succeeded"}},
    )

    status, again = api.call("POST", "/workflows/hello/runs", body=body)

    assert (status, again) == (202, {"run_id": first["run_id"], "status": "succeeded"})
    assert len(api.executions("hello")) == 1


def test_a_succeeded_run_has_no_run_level_error_and_its_tolerated_failure_stays_on_its_step(
    api: Api,
) -> None:
    api.seed_run(
        "r1",
        "hello",
        "2026-11-20T10:00:00Z",
        plan=[{"id": "greet", "kind": "run"}, {"id": "lint", "kind": "run"}],
        cost_usd=Decimal("0.012345"),
    )
    api.seed_step("r1", "greet", status="succeeded", cost_usd="0.000003")
    api.seed_step("r1", "lint", status="failed", error="StepFailed", cause="exit 1")

    status, run = api.call("GET", "/runs/r1")

    assert status == 200
    assert run["error_cause"] is None
    lint = next(s for s in run["steps"] if s["id"] == "lint")
    assert (lint["error"], lint["cause"]) == ("StepFailed", "exit 1")
    # Money has one JSON type: a decimal string, for the run and its steps and in history rows.
    assert run["cost_usd"] == "0.012345"
    assert [s["cost_usd"] for s in run["steps"]] == ["0.000003", None]
    _, page = api.call("GET", "/runs", query={"workflow": "hello"})
    assert page["runs"][0]["cost_usd"] == "0.012345"


def test_a_run_whose_starter_died_before_start_execution_frees_its_slot_after_a_grace_time(
    flowdeck_aws: tuple[Any, Any], control: ConcurrencyControl
) -> None:
    _, sfn = flowdeck_aws
    definition = limited(1)
    long_ago = "2026-01-01T00:00:00.000000Z"
    # Recorded and holding the slot, but the caller died before StartExecution: no execution exists.
    control.acquire(WORKFLOW, "orphan", 1)
    control.runs.record_start(
        "orphan", start_record(definition, "orphan", PAYLOAD, RunStatus.RUNNING, long_ago)
    )
    control.runs.record_start("young", start_record(definition, "young", PAYLOAD, RunStatus.RUNNING))
    # A record just written is a start under way, whatever its execution: never freed.
    assert control.holder_gone("young") is False
    assert control.start(definition, "next", PAYLOAD)["status"] == "running"

    orphan = control.run_item("orphan") or {}
    assert orphan["status"] == "failed" and orphan["error"] == "StartFailed"
    assert "no execution started" in orphan["error_cause"]
    assert {e["name"] for e in sfn.list_executions(stateMachineArn=ARN_PREFIX + WORKFLOW)["executions"]} == {
        "next"
    }
