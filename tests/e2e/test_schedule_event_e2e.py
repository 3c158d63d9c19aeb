"""Schedules and EventBridge events start real runs on the local stack, recorded with their trigger."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from typing import Any

import httpx

from flowdeck.constants import DELIVERIES_TABLE, ENV_STATE_MACHINE_ARN_PREFIX
from flowdeck.local.scheduler import LocalScheduler
from flowdeck.local.stack import LocalStack
from flowdeck.stores.deliveries import Deliveries
from flowdeck.stores.executions import Executions
from flowdeck.triggers.events import event_run_id
from tests.e2e.conftest import wait

# scheduled.yaml: cron(30 5 1 1 ? 2030) in Europe/Paris -> 2030-01-01 04:30Z (never during a test run).
FIRE_TIME = datetime(2030, 1, 1, 4, 30, tzinfo=UTC)


def scheduler(stack: LocalStack) -> LocalScheduler:
    """A scheduler over the stack's emulator, its clock injected through fire_due."""
    executions = Executions(stack.env[ENV_STATE_MACHINE_ARN_PREFIX], stack.client("stepfunctions"))
    deliveries = Deliveries(DELIVERIES_TABLE, stack.client("dynamodb"))
    return LocalScheduler(stack.catalog, executions, deliveries, since=datetime(2029, 12, 31, tzinfo=UTC))


def started_deliveries(api: httpx.Client, workflow: str, timeout: float = 30.0) -> list[dict[str, Any]]:
    """The workflow's trigger history once it has a `started` row (the run-events reaction writes it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        deliveries = list(api.get(f"/workflows/{workflow}/triggers").json()["deliveries"])
        if any(d["outcome"] == "started" for d in deliveries):
            return deliveries
        time.sleep(0.1)
    raise AssertionError(f"no started delivery of {workflow} within {timeout}s")


def test_schedule_firing_starts_one_run_with_its_inputs(stack: LocalStack, api: httpx.Client):
    [firing] = [
        f
        for f in scheduler(stack).fire_due(datetime(2030, 1, 1, 4, 30, 1, tzinfo=UTC))
        if f.workflow == "scheduled"
    ]
    # The same instant fired again (another scheduler, e.g. a restarted stack): no second run.
    [again] = [f for f in scheduler(stack).fire_due(FIRE_TIME) if f.workflow == "scheduled"]

    run = wait(api, firing.run_id)

    assert again.run_id == firing.run_id
    assert run["status"] == "succeeded", run
    assert run["trigger"] == "schedule"
    assert run["started_by"] == "schedule:cron(30 5 1 1 ? 2030)"
    assert run["inputs"] == {"target": "nightly", "depth": 1}
    runs = api.get("/runs", params={"workflow": "scheduled"}).json()["runs"]
    assert [r["run_id"] for r in runs] == [firing.run_id]
    # The run's start is recorded once, from its run record; the repeat firing records a row only
    # when Step Functions refused it (the first run had already ended): as a duplicate of that run.
    deliveries = started_deliveries(api, "scheduled")
    started = [d for d in deliveries if d["outcome"] == "started"]
    assert [(d["trigger"], d["delivery_id"], d["run_id"], d["source"]) for d in started] == [
        ("schedule", firing.run_id, firing.run_id, "schedule:cron(30 5 1 1 ? 2030)")
    ]
    repeats = [d for d in deliveries if d["outcome"] != "started"]
    assert all((d["outcome"], d["run_id"]) == ("duplicate", firing.run_id) for d in repeats), deliveries
    history = api.get("/workflows/scheduled/triggers").json()
    assert history["next_fire_times"] == ["2030-01-01T04:30:00Z"]


def test_eventbridge_event_starts_an_incident_run(stack: LocalStack, api: httpx.Client):
    detail = {"severity": "high", "service": "checkout"}
    answer = stack.client("events").put_events(
        Entries=[{"Source": "acme.incidents", "DetailType": "Incident Opened", "Detail": json.dumps(detail)}]
    )
    event_id = answer["Entries"][0]["EventId"]

    # The stack's rule poller starts it; the execution name follows from the event id.
    # (first_seen is idempotent: asking here names the time the poller reads, whoever asks first.)
    seen = Deliveries(DELIVERIES_TABLE, stack.client("dynamodb")).first_seen(
        "incident-response", "event", event_id
    )
    run = wait(api, event_run_id("incident-response", 0, event_id, seen))

    assert run["status"] == "succeeded", run
    assert run["trigger"] == "incident"
    assert run["started_by"] == "acme.incidents/Incident Opened"
    assert run["inputs"] == {"event": detail}
    history = started_deliveries(api, "incident-response")
    assert [(d["trigger"], d["run_id"], d["outcome"], d["source"]) for d in history] == [
        ("incident", run["run_id"], "started", "acme.incidents/Incident Opened")
    ]
