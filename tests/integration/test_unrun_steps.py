"""Steps an ended run never reached, against moto: recorded skipped (or cancelled) with why, shown so by
the API, never reused by a retry."""

from __future__ import annotations

from typing import Any

import pytest

from flowdeck.runs.unrun import record_unrun_steps
from flowdeck.stores.items import from_item
from flowdeck.stores.runs import RunStore
from tests.integration.test_api import Api

TABLE = "flowdeck-runs-test"  # as in conftest.py
DEPLOY_PLAN = [{"id": "plan", "kind": "run"}, {"id": "apply", "kind": "run"}, {"id": "health", "kind": "run"}]


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    return Api(*flowdeck_aws, lambda_context)


def item(api: Api, run_id: str, sort_key: str) -> dict[str, Any]:
    answer = api.ddb.get_item(TableName=TABLE, Key={"pk": {"S": run_id}, "sk": {"S": sort_key}})
    return from_item(answer.get("Item", {}))


def end_run(api: Api, run_id: str, status: str, **steps: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A deploy run that ended with `status`, its steps' records as given; (old, new) images of its end."""
    api.seed_run(run_id, "deploy", "2026-11-21T10:00:00Z", status=status, plan=DEPLOY_PLAN)
    for step, step_status in steps.items():
        api.seed_step(run_id, step, status=step_status, attempt=1)
    ended = item(api, run_id, "RUN")
    return ended | {"status": "running"}, ended


def test_a_failed_runs_unreached_steps_are_recorded_skipped_with_why(api: Api) -> None:
    old, new = end_run(api, "r1", "failed", plan="succeeded", apply="failed")

    record_unrun_steps(RunStore(TABLE, api.ddb))(old, new)

    health = item(api, "r1", "STEP#health")
    assert (health["status"], health["not_run"], health["step"]) == (
        "skipped",
        "the run failed at apply",
        "health",
    )
    assert item(api, "r1", "STEP#apply")["status"] == "failed"
    assert "not_run" not in item(api, "r1", "STEP#plan")


@pytest.mark.parametrize(
    ("run_status", "status", "reason"),
    [
        ("timed_out", "skipped", "the run timed out"),
        ("cancelled", "cancelled", "the run was cancelled"),
        ("failed", "skipped", "the run failed"),  # its start failed: no step ran
    ],
)
def test_every_way_a_run_ends_marks_the_steps_it_never_reached(
    api: Api, run_status: str, status: str, reason: str
) -> None:
    old, new = end_run(api, "r1", run_status)

    record_unrun_steps(RunStore(TABLE, api.ddb))(old, new)

    steps = [item(api, "r1", f"STEP#{s['id']}") for s in DEPLOY_PLAN]
    assert [(s["status"], s["not_run"]) for s in steps] == [(status, reason)] * 3


def test_redelivery_and_later_changes_leave_the_record_as_it_is(api: Api) -> None:
    old, new = end_run(api, "r1", "failed", plan="succeeded", apply="failed")
    # A step waiting for an automatic retry when the run ended, and one that started after all.
    api.seed_step("r1", "health", status="pending", attempt=1)
    react = record_unrun_steps(RunStore(TABLE, api.ddb))
    calls: list[str] = []
    for operation in ("Query", "UpdateItem"):
        api.ddb.meta.events.register(
            f"after-call.dynamodb.{operation}", lambda op=operation, **_: calls.append(op)
        )

    react(None, old)  # still running: nothing to do
    react(old, new)
    marked = item(api, "r1", "STEP#health")
    api.seed_step("r1", "health", status="running", attempt=2)
    react(old, new)  # a redelivery: the step that is no longer pending keeps its record
    react(new, new | {"duration_ms": 5000})  # the ended run's later writes read nothing

    assert (marked["status"], marked["not_run"], marked["attempt"]) == (
        "skipped",
        "the run failed at apply",
        1,
    )
    assert item(api, "r1", "STEP#health")["status"] == "running"
    assert calls == ["Query", "UpdateItem", "Query"]  # the redelivery found nothing pending


def test_the_api_says_not_run_also_before_the_reaction_recorded_it(api: Api) -> None:
    end_run(api, "r1", "failed", plan="succeeded", apply="failed")
    api.seed_run("r2", "deploy", "2026-11-21T11:00:00Z", status="running", plan=DEPLOY_PLAN)

    _, failed = api.call("GET", "/runs/r1")
    _, running = api.call("GET", "/runs/r2")

    assert [(s["id"], s["status"], s["not_run"]) for s in failed["steps"]] == [
        ("plan", "succeeded", None),
        ("apply", "failed", None),
        ("health", "skipped", "the run failed at apply"),
    ]
    assert {(s["status"], s["not_run"]) for s in running["steps"]} == {("pending", None)}


def test_a_retry_runs_the_steps_the_run_never_reached_again(api: Api) -> None:
    old, new = end_run(api, "r1", "timed_out", plan="succeeded")
    record_unrun_steps(RunStore(TABLE, api.ddb))(old, new)

    status, retry = api.call("POST", "/runs/r1/retry", body="{}")

    assert status == 202, retry
    assert (retry["from_step"], retry["reused"]) == (["apply"], ["plan"])
