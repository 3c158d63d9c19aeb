"""The local stack's schedules and event rules against moto: what they start and what they record.

A run they start is recorded in the trigger history by the run-events reaction (as on AWS), fed here
the RUN item each execution's RecordRunStart would write; the pollers record only what started no run.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck.catalog import Catalog
from flowdeck.control.workflow_state import SetWorkflowState, WorkflowStates
from flowdeck.local.event_rules import EventRulePoller, install_rules
from flowdeck.local.scheduler import LocalScheduler
from flowdeck.runs.service import RunService
from flowdeck.stores.deliveries import Deliveries
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import create_deliveries_table_kwargs, create_table_kwargs
from flowdeck.triggers.deliveries import record_trigger_starts
from flowdeck.triggers.events import event_run_id
from flowdeck.triggers.schedules import firing_run_id
from flowdeck.triggers.switch import SCHEDULE_GROUP, TriggerSwitch, rule_name, schedule_name

WORKFLOWS = Path(__file__).parent.parent / "fixtures" / "schedules"
ARN_PREFIX = "arn:aws:states:us-east-1:123456789012:stateMachine:flowdeck-"
DELIVERIES = "flowdeck-deliveries-test"
RUNS = "flowdeck-runs-test"
PASS_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
# nightly fires at 06:30 Paris time: 05:30Z in winter.
FIRE = datetime(2026, 3, 2, 5, 30, tzinfo=UTC)


class Local:
    """moto clients, the catalog of the schedule fixtures and the adapters the local triggers use."""

    def __init__(self) -> None:
        self.catalog = Catalog.from_dir(WORKFLOWS)
        self.sfn = boto3.client("stepfunctions", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        self.events = boto3.client("events", region_name="us-east-1")
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_deliveries_table_kwargs(DELIVERIES))
        for name in self.catalog.names():
            self.sfn.create_state_machine(
                name=f"flowdeck-{name}",
                definition=PASS_DEFINITION,
                roleArn="arn:aws:iam::123456789012:role/flowdeck-sfn",
            )
        self.executions = Executions(ARN_PREFIX, self.sfn)
        self.deliveries = Deliveries(DELIVERIES, ddb)

    def scheduler(self, since: datetime | None) -> LocalScheduler:
        return LocalScheduler(self.catalog, self.executions, self.deliveries, since=since)

    def executions_of(self, workflow: str) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=ARN_PREFIX + workflow)["executions"]
        return [self.sfn.describe_execution(executionArn=e["executionArn"]) for e in listed]


def record_run_starts(local: Local) -> None:
    """The run-events reaction on each execution's first RUN item, delivered twice (at least once)."""
    react = record_trigger_starts(local.deliveries)
    for workflow in local.catalog.names():
        for execution in local.executions_of(workflow):
            given = json.loads(execution["input"])
            run = {
                "run_id": execution["name"],
                "workflow": workflow,
                "status": "running",
                "trigger": given["trigger"],
                "started_by": given["started_by"],
                "started_at": execution["startDate"].isoformat(),
            }
            react(None, run)
            react(None, run)


@pytest.fixture
def local() -> Iterator[Local]:
    with mock_aws():
        yield Local()


# -- schedules ----------------------------------------------------------------------------------
def test_due_schedule_starts_one_run_with_its_inputs_and_is_recorded(local: Local):
    scheduler = local.scheduler(since=datetime(2026, 3, 2, 5, 0, tzinfo=UTC))

    firings = scheduler.fire_due(datetime(2026, 3, 2, 5, 30, 0, 400000, tzinfo=UTC))

    assert [(f.workflow, f.fire_time, f.outcome) for f in firings] == [("nightly", FIRE, "started")]
    [execution] = local.executions_of("nightly")
    assert execution["name"] == firing_run_id("nightly", 0, FIRE) == firings[0].run_id
    assert json.loads(execution["input"]) == {
        "inputs": {"target": "production"},
        "trigger": "schedule",
        "started_by": "schedule:cron(30 6 * * ? *)",
    }
    assert local.deliveries.recent("nightly") == []  # the run's start is the reaction's to record
    record_run_starts(local)
    [delivery] = local.deliveries.recent("nightly")
    assert delivery | {"received_at": None} == {
        "workflow": "nightly",
        "received_at": None,
        "trigger": "schedule",
        "delivery_id": firings[0].run_id,
        "outcome": "started",
        "run_id": firings[0].run_id,
        "source": "schedule:cron(30 6 * * ? *)",
    }


def test_nothing_fires_before_the_fire_time_or_twice_for_one_check_window(local: Local):
    scheduler = local.scheduler(since=datetime(2026, 3, 2, 5, 0, tzinfo=UTC))

    assert scheduler.fire_due(datetime(2026, 3, 2, 5, 29, 59, tzinfo=UTC)) == []
    assert len(scheduler.fire_due(datetime(2026, 3, 2, 5, 30, 1, tzinfo=UTC))) == 1
    assert scheduler.fire_due(datetime(2026, 3, 2, 5, 30, 2, tzinfo=UTC)) == []

    assert len(local.executions_of("nightly")) == 1


def test_double_fire_of_one_instant_starts_one_run(local: Local):
    # Two schedulers (say, a restarted stack) fire the same instant: the execution name is the same.
    first = local.scheduler(since=datetime(2026, 3, 2, 5, 0, tzinfo=UTC)).fire_due(FIRE)
    second = local.scheduler(since=datetime(2026, 3, 2, 5, 0, tzinfo=UTC)).fire_due(FIRE)

    assert first[0].run_id == second[0].run_id
    assert len(local.executions_of("nightly")) == 1
    # Step Functions answers a repeat of a running execution (same name and input) as the same start:
    # neither firing records a row itself, and the one run's start is recorded once.
    assert local.deliveries.recent("nightly") == []
    record_run_starts(local)
    assert [(d["run_id"], d["outcome"]) for d in local.deliveries.recent("nightly")] == [
        (first[0].run_id, "started")
    ]


def test_a_firing_whose_run_exists_with_other_input_is_recorded_duplicate(local: Local):
    scheduler = local.scheduler(since=datetime(2026, 3, 2, 5, 0, tzinfo=UTC))
    run_id = firing_run_id("nightly", 0, FIRE)
    local.executions.start("nightly", run_id, {"inputs": {}, "trigger": "manual", "started_by": "alice"})

    [firing] = scheduler.fire_due(FIRE)

    assert firing.outcome == "duplicate"
    [delivery] = local.deliveries.recent("nightly")
    assert (delivery["outcome"], delivery["run_id"], delivery["delivery_id"]) == (
        "duplicate",
        run_id,
        "2026-03-02T05:30:00Z",
    )


def test_fires_missed_while_the_stack_was_down_are_not_replayed(local: Local):
    scheduler = local.scheduler(since=None)
    scheduler.clock = lambda: datetime(2026, 3, 5, 12, 0, tzinfo=UTC)
    scheduler.start()
    scheduler.stop()

    assert scheduler.fire_due(datetime(2026, 3, 5, 12, 0, 1, tzinfo=UTC)) == []
    [firing] = scheduler.fire_due(datetime(2026, 3, 6, 5, 30, tzinfo=UTC))

    assert firing.fire_time == datetime(2026, 3, 6, 5, 30, tzinfo=UTC)
    assert len(local.executions_of("nightly")) == 1


# -- event rules --------------------------------------------------------------------------------
def put_incident(local: Local, detail: dict[str, Any], detail_type: str = "Incident Opened") -> str:
    answer = local.events.put_events(
        Entries=[{"Source": "acme.incidents", "DetailType": detail_type, "Detail": json.dumps(detail)}]
    )
    assert answer["FailedEntryCount"] == 0
    return str(answer["Entries"][0]["EventId"])


def test_matching_event_starts_an_incident_run_with_the_detail(local: Local):
    rules = install_rules(local.events, local.sqs, local.catalog)
    poller = EventRulePoller(rules, local.sqs, local.executions, local.deliveries)
    [rule] = rules

    event_id = put_incident(local, {"severity": "high", "service": "checkout"})
    put_incident(local, {"severity": "low"}, detail_type="Incident Closed")  # not in the pattern

    assert poller.poll(rule) == [
        event_run_id("responder", 0, event_id, local.deliveries.first_seen("responder", "event", event_id))
    ]
    [execution] = local.executions_of("responder")
    assert json.loads(execution["input"]) == {
        "inputs": {"event": {"severity": "high", "service": "checkout"}},
        "trigger": "incident",
        "started_by": "acme.incidents/Incident Opened",
        "event_id": event_id,
    }
    assert local.deliveries.recent("responder") == []
    record_run_starts(local)
    [delivery] = local.deliveries.recent("responder")
    assert (delivery["trigger"], delivery["run_id"], delivery["outcome"], delivery["source"]) == (
        "incident",
        event_run_id("responder", 0, event_id, local.deliveries.first_seen("responder", "event", event_id)),
        "started",
        "acme.incidents/Incident Opened",
    )
    assert poller.poll(rule) == []


def test_redelivered_event_starts_one_run(local: Local):
    rules = install_rules(local.events, local.sqs, local.catalog)
    poller = EventRulePoller(rules, local.sqs, local.executions, local.deliveries)
    [rule] = rules
    put_incident(local, {"severity": "high"})
    [message] = local.sqs.receive_message(QueueUrl=rule.queue_url, VisibilityTimeout=0)["Messages"]
    local.sqs.send_message(QueueUrl=rule.queue_url, MessageBody=message["Body"])  # at-least-once: twice

    run_ids = poller.poll(rule) + poller.poll(rule)

    assert len(run_ids) == 2 and len(set(run_ids)) == 1
    assert len(local.executions_of("responder")) == 1
    record_run_starts(local)
    assert [(d["run_id"], d["outcome"]) for d in local.deliveries.recent("responder")] == [
        (run_ids[0], "started")
    ]


def test_unreadable_message_is_refused_and_dropped(local: Local):
    rules = install_rules(local.events, local.sqs, local.catalog)
    poller = EventRulePoller(rules, local.sqs, local.executions, local.deliveries)
    [rule] = rules
    local.sqs.send_message(QueueUrl=rule.queue_url, MessageBody="not json")

    assert poller.poll(rule) == []
    assert poller.poll(rule) == []
    assert local.executions_of("responder") == []
    [delivery] = local.deliveries.recent("responder")
    assert delivery["outcome"] == "refused"


def test_event_whose_run_exists_with_other_input_is_recorded_duplicate_under_its_trigger(local: Local):
    rules = install_rules(local.events, local.sqs, local.catalog)
    poller = EventRulePoller(rules, local.sqs, local.executions, local.deliveries)
    [rule] = rules
    event_id = put_incident(local, {"severity": "high"})
    run_id = event_run_id(
        "responder", 0, event_id, local.deliveries.first_seen("responder", "event", event_id)
    )
    local.executions.start("responder", run_id, {"inputs": {}, "trigger": "manual", "started_by": "alice"})

    assert poller.poll(rule) == [run_id]

    [delivery] = local.deliveries.recent("responder")
    assert (delivery["trigger"], delivery["delivery_id"], delivery["outcome"], delivery["run_id"]) == (
        "incident",
        event_id,
        "duplicate",
        run_id,
    )


# -- paused workflows ---------------------------------------------------------------------------
@pytest.fixture
def paused(local: Local) -> WorkflowStates:
    """Both fixture workflows paused (a runs table for their state)."""
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(**create_table_kwargs(RUNS))
    states = WorkflowStates(RunStore(RUNS, ddb))
    for workflow in ("nightly", "responder"):
        states.set(workflow, SetWorkflowState(active=False, reason="migration"), "alice")
    return states


def test_a_paused_workflow_schedule_fires_nothing_and_is_recorded_refused(
    local: Local, paused: WorkflowStates
):
    scheduler = LocalScheduler(
        local.catalog,
        local.executions,
        local.deliveries,
        since=datetime(2026, 3, 2, 5, 0, tzinfo=UTC),
        states=paused,
    )

    [firing] = scheduler.fire_due(datetime(2026, 3, 2, 5, 30, 1, tzinfo=UTC))

    assert firing.outcome == "refused" and local.executions_of("nightly") == []
    [delivery] = local.deliveries.recent("nightly")
    assert (delivery["trigger"], delivery["outcome"]) == ("schedule", "refused")
    assert "paused" in delivery["reason"] and "migration" in delivery["reason"]

    paused.set("nightly", SetWorkflowState(active=True), "alice")
    assert scheduler.fire_due(datetime(2026, 3, 3, 5, 30, 1, tzinfo=UTC))[0].outcome == "started"


def test_an_event_for_a_paused_workflow_starts_nothing_and_is_recorded_refused(
    local: Local, paused: WorkflowStates
):
    rules = install_rules(local.events, local.sqs, local.catalog)
    poller = EventRulePoller(rules, local.sqs, local.executions, local.deliveries, states=paused)
    [rule] = rules
    event_id = put_incident(local, {"severity": "high"})

    assert poller.poll(rule) == []
    assert poller.poll(rule) == []  # refused for good: the message is not delivered again

    assert local.executions_of("responder") == []
    [delivery] = local.deliveries.recent("responder")
    assert (delivery["trigger"], delivery["delivery_id"], delivery["outcome"]) == (
        "incident",
        event_id,
        "refused",
    )
    assert "migration" in delivery["reason"]
    paused.set("responder", SetWorkflowState(active=True), "alice")
    put_incident(local, {"severity": "high"})
    assert len(poller.poll(rule)) == 1


def test_pause_disables_the_workflow_schedules_and_rules_on_aws_and_resume_enables_them(local: Local):
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    scheduler.create_schedule_group(Name=SCHEDULE_GROUP)
    target = {
        "Arn": ARN_PREFIX + "nightly",
        "RoleArn": "arn:aws:iam::123456789012:role/flowdeck-schedules",
        "Input": '{"trigger": "schedule"}',
    }
    scheduler.create_schedule(
        Name=schedule_name("nightly", 0),
        GroupName=SCHEDULE_GROUP,
        ScheduleExpression="cron(30 6 * * ? *)",
        ScheduleExpressionTimezone="Europe/Paris",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target=target,
        State="ENABLED",
    )
    local.events.put_rule(Name=rule_name("responder", 0), EventPattern='{"source": ["acme.incidents"]}')
    switch = TriggerSwitch(scheduler, local.events)

    def states() -> tuple[str, str]:
        schedule = scheduler.get_schedule(Name=schedule_name("nightly", 0), GroupName=SCHEDULE_GROUP)
        return schedule["State"], local.events.describe_rule(Name=rule_name("responder", 0))["State"]

    assert switch.set(local.catalog.get("nightly"), False) == [
        {"kind": "schedule", "name": "nightly-0", "state": "DISABLED"}
    ]
    switch.set(local.catalog.get("responder"), False)
    switch.set(local.catalog.get("responder"), False)  # twice: still fine
    assert states() == ("DISABLED", "DISABLED")
    # The rest of the schedule is kept: UpdateSchedule replaces the whole schedule.
    kept = scheduler.get_schedule(Name="nightly-0", GroupName=SCHEDULE_GROUP)
    assert (kept["ScheduleExpression"], kept["ScheduleExpressionTimezone"], kept["Target"]["Arn"]) == (
        "cron(30 6 * * ? *)",
        "Europe/Paris",
        target["Arn"],
    )

    switch.set(local.catalog.get("nightly"), True)
    switch.set(local.catalog.get("responder"), True)
    assert states() == ("ENABLED", "ENABLED")


def test_the_state_endpoint_switches_the_schedules_on_aws_and_records_the_pause_first(local: Local):
    # RunService with the AWS switch (FLOWDECK_MANAGE_TRIGGERS): the pause recorded, then the schedule off.
    scheduler = boto3.client("scheduler", region_name="us-east-1")
    scheduler.create_schedule_group(Name=SCHEDULE_GROUP)
    scheduler.create_schedule(
        Name=schedule_name("nightly", 0),
        GroupName=SCHEDULE_GROUP,
        ScheduleExpression="cron(30 6 * * ? *)",
        FlexibleTimeWindow={"Mode": "OFF"},
        Target={
            "Arn": ARN_PREFIX + "nightly",
            "RoleArn": "arn:aws:iam::123456789012:role/flowdeck-schedules",
        },
    )
    ddb = boto3.client("dynamodb", region_name="us-east-1")
    ddb.create_table(**create_table_kwargs(RUNS))
    service = RunService(
        local.catalog, RunStore(RUNS, ddb), local.executions, TriggerSwitch(scheduler, local.events)
    )

    answer = service.set_workflow_state(
        "nightly", SetWorkflowState(active=False, reason="migration"), "alice"
    )

    assert answer["triggers"] == [{"kind": "schedule", "name": "nightly-0", "state": "DISABLED"}]
    assert (answer["active"], answer["paused_by"], answer["pause_reason"]) == (False, "alice", "migration")
    assert scheduler.get_schedule(Name="nightly-0", GroupName=SCHEDULE_GROUP)["State"] == "DISABLED"
    service.set_workflow_state("nightly", SetWorkflowState(active=True), "bob")
    assert scheduler.get_schedule(Name="nightly-0", GroupName=SCHEDULE_GROUP)["State"] == "ENABLED"
    assert service.get_workflow("nightly", "jane@example.com")["active"] is True
