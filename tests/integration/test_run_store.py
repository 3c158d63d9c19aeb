"""RunStore against moto: step records per attempt, published outputs, run reads and paging."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from flowdeck.definition import parse_workflow
from flowdeck.errors import BadRequest
from flowdeck.runs.history import (
    CURSOR_VERSION,
    READ_FACTOR,
    decode_cursor,
    encode_cursor,
    plan_history,
)
from flowdeck.stores.history_plan import HistoryPlan
from flowdeck.stores.items import from_item
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import BY_STARTED_INDEX, RUN_KIND
from statemachines import compile_workflow

TABLE = "flowdeck-runs-test"  # as in conftest.py

RUNNING = {
    "status": "running",
    "started_at": "2026-11-21T10:00:00Z",
    "ended_at": None,
    "error": None,
    "cause": None,
}


@pytest.fixture
def store(runs_ddb: Any) -> RunStore:
    return RunStore(TABLE, runs_ddb)


def raw_items(ddb: Any, run_id: str) -> list[dict[str, Any]]:
    """Every item of the run's partition, exactly as stored."""
    return ddb.query(
        TableName=TABLE,
        KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": run_id}},
        ConsistentRead=True,
    )["Items"]


def step_item(ddb: Any, run_id: str, step_id: str) -> dict[str, Any]:
    key = {"pk": {"S": run_id}, "sk": {"S": f"STEP#{step_id}"}}
    return from_item(ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"])


def put(ddb: Any, item: dict[str, Any]) -> None:
    serializer = TypeSerializer()
    ddb.put_item(TableName=TABLE, Item={k: serializer.serialize(v) for k, v in item.items()})


def record_step_lost(ddb: Any, run_id: str, step_id: str) -> None:
    """The state machine's lost-worker recorder, as compiled, with its JSONPath values resolved."""
    asl = compile_workflow(parse_workflow(f"name: x\nsteps: [{{id: {step_id}, run: echo}}]\n", "x.yaml"))
    params = asl["States"][f"{step_id}:WorkerLost"]["Parameters"]
    context = {"$$.Execution.Name": run_id, "$$.State.EnteredTime": "2026-11-21T10:05:00Z"}
    resolved = json.loads(
        json.dumps(params), object_hook=lambda d: {"S": context[d["S.$"]]} if "S.$" in d else d
    )
    ddb.update_item(**(resolved | {"TableName": TABLE}))


# -- step records -----------------------------------------------------------------------------------


def test_duplicate_delivery_of_the_same_attempt_is_refused_and_writes_nothing(store: RunStore, runs_ddb: Any):
    assert store.start_attempt("r1", "build", "token-1", 1, RUNNING) is not None
    before = raw_items(runs_ddb, "r1")

    later = RUNNING | {"started_at": "2026-11-21T10:00:30Z"}
    assert store.start_attempt("r1", "build", "token-1", 1, later) is None

    assert raw_items(runs_ddb, "r1") == before


def test_retry_with_the_same_token_is_a_new_attempt_that_keeps_the_first(store: RunStore, runs_ddb: Any):
    # moto reuses a state's task token across its retries; the attempt number tells them apart.
    first = store.start_attempt("r1", "build", "token-1", 1, RUNNING)
    assert first is not None
    failed = {
        "status": "failed",
        "ended_at": "2026-11-21T10:00:10Z",
        "error": "StepFailed",
        "cause": "exit code 1",
    }
    assert store.finish_attempt(first, failed | {"status": "pending"}, failed)

    retry = RUNNING | {"started_at": "2026-11-21T10:00:20Z"}
    second = store.start_attempt("r1", "build", "token-1", 2, retry)

    assert second is not None
    item = step_item(runs_ddb, "r1", "build")
    assert (item["status"], item["attempt"], item["started_at"]) == ("running", 2, "2026-11-21T10:00:20Z")
    assert item["attempt#1"] == RUNNING | failed | {"attempt": 1}
    assert item["attempt#2"] == retry | {"attempt": 2}
    assert item["token"] != first["token"]
    # A duplicate of the retry is refused in turn.
    assert store.start_attempt("r1", "build", "token-1", 2, retry) is None


def test_finish_after_the_state_machine_recorded_the_step_lost_is_dropped(store: RunStore, runs_ddb: Any):
    started = store.start_attempt("r1", "build", "token-1", 1, RUNNING)
    assert started is not None
    record_step_lost(runs_ddb, "r1", "build")
    lost = raw_items(runs_ddb, "r1")

    succeeded = {"status": "succeeded", "ended_at": "2026-11-21T10:06:00Z", "exit_code": 0}
    assert store.finish_attempt(started, succeeded, succeeded) is False

    assert raw_items(runs_ddb, "r1") == lost
    item = step_item(runs_ddb, "r1", "build")
    assert (item["status"], item["error"], item["token"], item["ended_at"]) == (
        "failed",
        "WorkerLost",
        "lost",
        "2026-11-21T10:05:00Z",
    )


def test_a_start_checks_in_the_same_write_that_no_cancel_was_asked_for(store: RunStore, runs_ddb: Any):
    put(runs_ddb, {"pk": "r1", "sk": "RUN", "status": "running"})

    started, not_cancelled = store.start_attempt_unless_cancelled("r1", "build", "token-1", 1, RUNNING)

    assert not_cancelled and started is not None
    assert step_item(runs_ddb, "r1", "build") == started
    # A second delivery of the same message is refused, as by start_attempt.
    assert store.start_attempt_unless_cancelled("r1", "build", "token-1", 1, RUNNING) == (None, False)


def test_a_start_in_a_run_being_cancelled_is_recorded_and_says_the_cancel_is_not_ruled_out(
    store: RunStore, runs_ddb: Any
):
    # The step is recorded running (the cancel then records how it ended); its runner must read the
    # cancel before it starts any process.
    put(runs_ddb, {"pk": "r1", "sk": "RUN", "status": "cancelling", "cancel_requested_at": "now"})

    started, not_cancelled = store.start_attempt_unless_cancelled("r1", "build", "token-1", 1, RUNNING)

    assert not not_cancelled and started is not None
    assert step_item(runs_ddb, "r1", "build")["status"] == "running"
    assert store.start_attempt_unless_cancelled("r1", "build", "token-1", 1, RUNNING) == (None, False)


def test_redelivery_after_the_step_was_recorded_lost_is_refused(store: RunStore, runs_ddb: Any):
    assert store.start_attempt("r1", "build", "token-1", 1, RUNNING) is not None
    record_step_lost(runs_ddb, "r1", "build")
    lost = raw_items(runs_ddb, "r1")

    assert store.start_attempt("r1", "build", "token-1", 1, RUNNING) is None

    assert raw_items(runs_ddb, "r1") == lost


def test_finish_records_the_end_on_the_step_and_its_attempt(store: RunStore, runs_ddb: Any):
    started = store.start_attempt("r1", "build", "token-1", 1, RUNNING)
    assert started is not None
    ended = {"status": "succeeded", "ended_at": "2026-11-21T10:00:09Z", "exit_code": 0, "summary": "ok"}

    assert store.finish_attempt(started, ended, ended) is True

    item = step_item(runs_ddb, "r1", "build")
    assert (item["status"], item["exit_code"], item["summary"]) == ("succeeded", 0, "ok")
    assert item["attempt#1"] == RUNNING | ended | {"attempt": 1}


# -- outputs and run reads ----------------------------------------------------------------------------


def test_outputs_published_by_two_steps_are_both_read_back(store: RunStore):
    store.publish_outputs("r1", "plan", {"add": 3, "ratio": 0.5, "regions": ["eu", "us"]})
    store.publish_outputs("r1", "make-image", {"tag": "v1"})

    assert store.step_outputs("r1") == {
        "plan": {"add": 3, "ratio": 0.5, "regions": ["eu", "us"]},
        "make-image": {"tag": "v1"},
    }
    assert store.step_outputs("r2") == {}


def test_get_run_items_returns_the_run_its_steps_and_their_outputs(store: RunStore):
    put(
        store.client, {"pk": "r1", "sk": "RUN", "kind": "run", "workflow": "deploy", "plan": [{"id": "plan"}]}
    )
    started = store.start_attempt("r1", "plan", "token-1", 1, RUNNING)
    assert started is not None
    store.publish_outputs("r1", "plan", {"add": 3})
    put(store.client, {"pk": "r2", "sk": "RUN", "kind": "run", "workflow": "deploy"})

    run, steps, outputs = store.get_run_items("r1")

    assert run is not None
    assert (run["sk"], run["workflow"], run["plan"]) == ("RUN", "deploy", [{"id": "plan"}])
    assert steps == {"plan": started}
    assert outputs == {"plan": {"add": 3}}
    assert store.get_run_items("nope") == (None, {}, {})


# -- run history ---------------------------------------------------------------------------------


@pytest.fixture
def history(store: RunStore) -> RunStore:
    runs = [
        ("r1", "hello", "succeeded"),
        ("r2", "deploy", "failed"),
        ("r3", "deploy", "succeeded"),
        ("r4", "hello", "failed"),
        ("r5", "deploy", "failed"),
        ("r6", "hello", "running"),
    ]
    for hour, (run_id, workflow, status) in enumerate(runs, start=10):
        started_at = f"2026-11-20T{hour}:00:00Z"
        put(
            store.client,
            {
                "pk": run_id,
                "sk": "RUN",
                "kind": "run",
                "run_id": run_id,
                "workflow": workflow,
                "status": status,
                "started_at": started_at,
            },
        )
        # Step and outputs items share the partition but stay out of the sparse indexes.
        store.start_attempt(run_id, "a", "token", 1, RUNNING | {"started_at": started_at})
        store.publish_outputs(run_id, "a", {"n": 1})
    return store


def read_page(
    store: RunStore, plan: HistoryPlan, limit: int, cursor: str | None
) -> tuple[list[dict[str, Any]], str | None]:
    """One history page as GET /runs reads it: the cursor decoded for the plan, the next one encoded."""
    start = decode_cursor(plan, cursor) if cursor else None
    runs, last = store.read_history(plan, limit, start, READ_FACTOR * limit)
    return runs, encode_cursor(plan, last) if last else None


def test_history_pages_newest_first_through_a_filter(history: RunStore):
    # Every run, newest first, with the status as a residual filter (the fixture's items carry only
    # the every-run and per-workflow index keys).
    plan = HistoryPlan(BY_STARTED_INDEX, RUN_KIND, ascending=False, filters=(("status", "failed"),))
    first, cursor = read_page(history, plan, 2, None)

    assert [r["run_id"] for r in first] == ["r5", "r4"]
    assert cursor is not None
    rest, end = read_page(history, plan, 2, cursor)
    assert [r["run_id"] for r in rest] == ["r2"]
    assert end is None


def test_history_of_one_workflow_oldest_first(history: RunStore):
    runs, cursor = read_page(history, plan_history(workflow="deploy", ascending=True), 10, None)

    assert [(r["run_id"], r["sk"]) for r in runs] == [("r2", "RUN"), ("r3", "RUN"), ("r5", "RUN")]
    assert cursor is None


def forged(key: dict[str, Any]) -> str:
    """A cursor carrying `key` under the fingerprint of every-run history, newest first."""
    body = {"v": CURSOR_VERSION, "q": plan_history().fingerprint(), "k": key}
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "not-a-cursor!",
        forged({"pk": {"S": "r1"}, "sk": {"S": "RUN"}}),  # a table key, not an index key
        forged({"pk": {"S": "r1"}, "sk": {"S": "RUN"}, "kind": {"S": "run"}, "started_at": {"N": "1"}}),
        "WzFd",  # base64 of a JSON list
    ],
)
def test_forged_cursor_is_a_bad_request(history: RunStore, cursor: str):
    with pytest.raises(BadRequest) as raised:
        read_page(history, plan_history(), 2, cursor)

    assert raised.value.code == "BadRequest"


def test_cursor_of_one_index_is_refused_by_the_other(history: RunStore):
    _, cursor = read_page(history, plan_history(), 2, None)
    assert cursor is not None

    with pytest.raises(BadRequest, match="another query"):
        read_page(history, plan_history(workflow="deploy"), 2, cursor)
