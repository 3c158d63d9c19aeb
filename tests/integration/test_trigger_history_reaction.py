"""Runs Scheduler and EventBridge start directly reach the trigger history through the runs stream (moto)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest

from flowdeck.config import get_settings
from flowdeck.constants import RUN_SK
from flowdeck.runs.events import RunEvents
from flowdeck.stores.deliveries import Deliveries
from flowdeck.stores.schema import create_deliveries_table_kwargs
from flowdeck.triggers.deliveries import record_trigger_starts
from lambdas import run_events
from tests.integration.conftest import TABLE

DELIVERIES = "flowdeck-deliveries-reaction"
STARTED_AT = "2026-03-02T05:30:00.412Z"


class RunsStream:
    """Writes RUN items as the state machine does; each write's stream record as Lambda receives it.

    moto's in-process DynamoDB Streams does not answer DescribeStream, so the records are built from
    the item before and after each write (the runs table's NEW_AND_OLD_IMAGES view).
    """

    def __init__(self, ddb: Any) -> None:
        self.ddb = ddb
        self.pending: list[dict[str, Any]] = []

    def _write(self, run_id: str, **update: Any) -> None:
        key = {"pk": {"S": run_id}, "sk": {"S": RUN_SK}}
        old = self.ddb.get_item(TableName=TABLE, Key=key).get("Item")
        self.ddb.update_item(TableName=TABLE, Key=key, **update)
        new = self.ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
        change: dict[str, Any] = {"Keys": key, "NewImage": new, "StreamViewType": "NEW_AND_OLD_IMAGES"}
        if old:
            change["OldImage"] = old
        self.pending.append({"eventName": "MODIFY" if old else "INSERT", "dynamodb": change})

    def record_start(self, run_id: str, workflow: str, trigger: str, started_by: str) -> None:
        """What RecordRunStart writes (the fields the reaction reads)."""
        self._write(
            run_id,
            UpdateExpression=(
                "SET run_id = :run_id, kind = :kind, workflow = :workflow, #status = :running, "
                "#trigger = if_not_exists(#trigger, :trigger), started_by = if_not_exists(started_by, :by), "
                "started_at = :now, run_started_at = :now"
            ),
            ExpressionAttributeNames={"#status": "status", "#trigger": "trigger"},
            ExpressionAttributeValues={
                ":run_id": {"S": run_id},
                ":kind": {"S": "run"},
                ":workflow": {"S": workflow},
                ":running": {"S": "running"},
                ":trigger": {"S": trigger},
                ":by": {"S": started_by},
                ":now": {"S": STARTED_AT},
            },
        )

    def record_end(self, run_id: str) -> None:
        self._write(
            run_id,
            UpdateExpression="SET #status = :succeeded, ended_at = :end",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":succeeded": {"S": "succeeded"},
                ":end": {"S": "2026-03-02T05:31:00Z"},
            },
        )

    def records(self) -> list[dict[str, Any]]:
        """The stream records written since the last call, in order."""
        records, self.pending = self.pending, []
        return records


@pytest.fixture
def stream(flowdeck_aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[RunsStream]:
    ddb, _ = flowdeck_aws
    monkeypatch.setenv("FLOWDECK_DELIVERIES_TABLE", DELIVERIES)
    get_settings.cache_clear()
    ddb.create_table(**create_deliveries_table_kwargs(DELIVERIES))
    yield RunsStream(ddb)


def history(workflow: str) -> list[dict[str, Any]]:
    return Deliveries(DELIVERIES, boto3.client("dynamodb", region_name="us-east-1")).recent(workflow)


def test_schedule_run_is_recorded_once_when_its_record_arrives_twice(stream: RunsStream) -> None:
    stream.record_start("20260302-053000-schedule-1a2b", "hello", "schedule", "schedule:cron(30 5 * * ? *)")
    records = stream.records()
    assert [r["eventName"] for r in records] == ["INSERT"]

    # At least once: the Lambda's reactions (the handler's own list) get the same record twice.
    for record in records + records:
        run_events.run_events().handle(record)

    assert history("hello") == [
        {
            "workflow": "hello",
            "received_at": STARTED_AT,
            "trigger": "schedule",
            "delivery_id": "20260302-053000-schedule-1a2b",
            "outcome": "started",
            "run_id": "20260302-053000-schedule-1a2b",
            "source": "schedule:cron(30 5 * * ? *)",
        }
    ]


def test_event_and_incident_runs_are_recorded_with_their_trigger(stream: RunsStream) -> None:
    stream.record_start("evt-run", "hello", "event", "acme.deploys/Deploy Done")
    stream.record_start("inc-run", "deploy", "incident", "acme.incidents/Incident Opened")
    events = RunEvents([record_trigger_starts(Deliveries(DELIVERIES))])

    for record in stream.records():
        events.handle(record)

    assert [(d["trigger"], d["run_id"], d["source"]) for d in history("hello")] == [
        ("event", "evt-run", "acme.deploys/Deploy Done")
    ]
    assert [(d["trigger"], d["run_id"], d["source"]) for d in history("deploy")] == [
        ("incident", "inc-run", "acme.incidents/Incident Opened")
    ]


def test_manual_webhook_and_retry_runs_and_later_changes_are_not_recorded(stream: RunsStream) -> None:
    events = RunEvents([record_trigger_starts(Deliveries(DELIVERIES))])
    stream.record_start("scheduled-run", "hello", "schedule", "schedule:rate(1 hour)")
    for record in stream.records():
        events.handle(record)
    before = history("hello")

    stream.record_start("manual-run", "hello", "manual", "alice")
    stream.record_start("hook-run", "hello", "webhook", "webhook:deploy-hook")
    stream.record_start("git-run", "hello", "git", "octocat")
    stream.record_start("retry-run", "hello", "retry", "alice")
    stream.record_end("scheduled-run")
    # RecordRunStart again (a retried task): the item already had a status.
    stream.record_start("scheduled-run", "hello", "schedule", "schedule:rate(1 hour)")
    records = stream.records()
    assert len(records) == 6
    for record in records:
        events.handle(record)

    assert [d["run_id"] for d in before] == ["scheduled-run"]
    assert history("hello") == before


def test_record_once_writes_a_keyed_row_once_and_plain_records_every_arrival(stream: RunsStream) -> None:
    deliveries = Deliveries(DELIVERIES)
    at = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)

    assert deliveries.record("hello", "schedule", "r1", "started", run_id="r1", received_at=at, once=True)
    assert not deliveries.record("hello", "schedule", "r1", "started", run_id="r1", received_at=at, once=True)
    # The API's callers keep one unconditional put per arrival: a replayed delivery id is a row of its own.
    assert deliveries.record("hello", "webhook", "d1", "started", run_id="r2", received_at=at)
    later = at + timedelta(seconds=1)
    assert deliveries.record("hello", "webhook", "d1", "duplicate", run_id="r2", received_at=later)

    assert sorted((d["delivery_id"], d["outcome"]) for d in history("hello")) == [
        ("d1", "duplicate"),
        ("d1", "started"),
        ("r1", "started"),
    ]
