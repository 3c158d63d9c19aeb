"""Pausable workflows through the API on moto: refused starts change nothing, resume starts again."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowdeck.control.concurrency import ConcurrencyControl
from flowdeck.control.workflow_state import SetWorkflowState, WorkflowStates
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from tests.integration.conftest import ARN_PREFIX, TABLE
from tests.integration.test_api import Api, assert_error
from tests.integration.test_concurrency import PAYLOAD, WORKFLOW, limited, set_status

START = json.dumps({"inputs": {"name": "x"}})


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    return Api(*flowdeck_aws, lambda_context)


def pause(api: Api, reason: str | None = "release freeze", user: str = "alice") -> tuple[int, Any]:
    body: dict[str, Any] = {"active": False} | ({"reason": reason} if reason else {})
    return api.call("PUT", "/workflows/hello/state", body=json.dumps(body), user=user)


def run_items(api: Api) -> list[dict[str, Any]]:
    """Every item of the runs table but the workflow states."""
    items = api.ddb.scan(TableName=TABLE)["Items"]
    return [i for i in items if not i["pk"]["S"].startswith("WORKFLOW#")]


def test_a_paused_workflow_refuses_manual_starts_and_shows_who_paused_it(api: Api) -> None:
    status, paused = pause(api)

    assert status == 200, paused
    assert paused | {"paused_at": None} == {
        "workflow": "hello",
        "changed": True,
        "triggers": [],
        "active": False,
        "paused_by": "alice",
        "paused_at": None,
        "pause_reason": "release freeze",
        "resumed_by": None,
        "resumed_at": None,
        "resume_reason": None,
    }
    message = assert_error(api.call("POST", "/workflows/hello/runs", body=START), 409, "WorkflowPaused")
    assert "paused" in message and "release freeze" in message and "alice" in message
    assert run_items(api) == [] and api.executions("hello") == []
    _, listed = api.call("GET", "/workflows")
    states = {w["name"]: (w["active"], w["paused_by"], w["pause_reason"]) for w in listed["workflows"]}
    assert states == {"deploy": (True, None, None), "hello": (False, "alice", "release freeze")}
    _, one = api.call("GET", "/workflows/hello")
    assert (one["active"], one["paused_by"], one["paused_at"]) == (False, "alice", paused["paused_at"])


def test_pausing_twice_keeps_the_first_pause_and_resume_starts_runs_again(api: Api) -> None:
    _, first = pause(api)
    status, again = pause(api, reason="another reason", user="bob")

    assert status == 200 and again["changed"] is False
    assert (again["paused_by"], again["pause_reason"], again["paused_at"]) == (
        "alice",
        "release freeze",
        first["paused_at"],
    )
    status, resumed = api.call("PUT", "/workflows/hello/state", body='{"active": true}', user="bob")
    assert (status, resumed["active"], resumed["changed"], resumed["resumed_by"]) == (200, True, True, "bob")
    assert resumed["paused_by"] is None
    _, twice = api.call("PUT", "/workflows/hello/state", body='{"active": true}')
    assert twice["changed"] is False and twice["resumed_by"] == "bob"

    status, started = api.call("POST", "/workflows/hello/runs", body=START)
    assert (status, started["status"]) == (202, "running")


def test_a_retry_of_a_paused_workflow_is_refused_and_writes_nothing(api: Api) -> None:
    api.seed_failed_run("r1")
    before = run_items(api)
    pause(api)

    assert_error(api.call("POST", "/runs/r1/retry", body="{}"), 409, "WorkflowPaused")
    assert run_items(api) == before and api.executions("hello") == []


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ('{"active": "no"}', 422, "ValidationError"),
        ("{}", 422, "ValidationError"),
        ('{"active": false, "until": "monday"}', 422, "ValidationError"),
        (json.dumps({"active": False, "reason": "x" * 501}), 422, "ValidationError"),
        ("not json", 400, "BadRequest"),
    ],
)
def test_a_bad_state_request_is_refused_and_changes_nothing(
    api: Api, body: str, status: int, code: str
) -> None:
    answer = api.call("PUT", "/workflows/hello/state", body=body)

    assert answer[0] == status and answer[1]["error"], answer
    assert set(answer[1]) == {"error", "message"}
    _, workflow = api.call("GET", "/workflows/hello")
    assert workflow["active"] is True and workflow["paused_by"] is None


def test_pausing_an_unknown_workflow_is_404(api: Api) -> None:
    assert_error(api.call("PUT", "/workflows/nope/state", body='{"active": false}'), 404, "WorkflowNotFound")


def test_queued_runs_stay_queued_while_paused_and_start_in_order_on_resume(
    flowdeck_aws: tuple[Any, Any],
) -> None:
    ddb, sfn = flowdeck_aws
    runs = RunStore(TABLE, ddb)
    control = ConcurrencyControl(runs, Executions(ARN_PREFIX, sfn))
    states = WorkflowStates(runs)
    definition = limited(1)
    for run_id in ("r1", "r2"):
        control.start(definition, run_id, PAYLOAD)
    states.set(WORKFLOW, SetWorkflowState(active=False), "alice")

    set_status(ddb, "r1", "running")
    control.on_run_change(*set_status(ddb, "r1", "succeeded"))  # its slot frees, r2 must not start

    assert (control.run_item("r2") or {})["status"] == "queued"
    assert control.slots(WORKFLOW) == (set(), 1)
    states.set(WORKFLOW, SetWorkflowState(active=True), "alice")
    assert control.promote(WORKFLOW) == ["r2"]
    assert (control.run_item("r2") or {})["status"] == "running"
