"""Approvals a run left undecided (timed out, cancelled, run failed): Slack message and inbox closed.

Through the run-events Lambda's own handler, on moto, with the runs table's stream records and a local
stand-in for Slack's Web API.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from flowdeck.approvals.directory import Directory
from flowdeck.approvals.ended import EndedApprovals
from flowdeck.approvals.slack.blocks import APPROVE_ACTION, OPEN_ACTION, REJECT_ACTION
from flowdeck.approvals.slack.client import SlackApprovals
from flowdeck.config import get_settings
from flowdeck.constants import RUN_SK
from flowdeck.runs.events import run_change
from flowdeck.stores.approvals import ApprovalStore
from flowdeck.stores.items import to_attribute, to_item
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import create_deliveries_table_kwargs
from lambdas import run_events
from tests.fakes.slack import FakeSlack
from tests.integration.conftest import TABLE

BOT_TOKEN = "xoxb-ended-approvals"
JANE, SAM = "jane@example.com", "sam@example.com"
DELIVERIES = "flowdeck-deliveries-ended"
WORKFLOW = "deploy"
REQUEST: dict[str, Any] = {
    "approvers": {"users": [JANE, SAM], "groups": [], "any_member": False},
    "min_approvals": 2,
    "channels": ["slack", "inbox"],
    "message": "Apply 3 additions to production?",
    "link": "http://flowdeck.test/runs/RUN",
    "deadline": "2026-11-21T11:16:00+00:00",
    "requested_at": "2026-11-21T10:16:01+00:00",
}


class World:
    """Runs waiting at an approval posted to the fake Slack; ends them as the engine does."""

    def __init__(self, ddb: Any, slack: FakeSlack) -> None:
        self.ddb = ddb
        self.slack = slack
        self.runs = RunStore(TABLE, ddb)
        self.store = ApprovalStore(self.runs)
        self.pending: list[dict[str, Any]] = []
        self.sequence = 0

    def put(self, item: dict[str, Any]) -> None:
        self.ddb.put_item(TableName=TABLE, Item=to_item(item))

    def waiting(self, run_id: str, approvals: list[dict[str, Any]] | None = None) -> dict[str, str]:
        """A run waiting at `approval` (jane and sam, 2 needed): the Slack request posted, inbox items."""
        plan = [{"id": "plan", "kind": "run"}, {"id": "approval", "kind": "approval"}]
        self.put(
            {"pk": run_id, "sk": RUN_SK, "run_id": run_id, "workflow": WORKFLOW, "status": "waiting"}
            | {
                "plan": plan,
                "started_at": "2026-11-21T10:15:00+00:00",
            }
        )
        request = REQUEST | {"link": f"http://flowdeck.test/runs/{run_id}"}
        posted = SlackApprovals().post_request(
            request | {"run_id": run_id, "workflow": WORKFLOW, "step": "approval"}
        )
        self.put(
            {
                "pk": run_id,
                "sk": "STEP#approval",
                "step": "approval",
                "kind": "approval",
                "status": "waiting",
                "wait_token": f"token-{run_id}",
                "approval_version": len(approvals or []),
                "approval": request | {"approvals": approvals or [], "slack": posted},
                "decisions": [{"decision": "approve"} | a for a in approvals or []],
            }
        )
        self.store.add_inbox({JANE, SAM}, run_id, "approval", {"workflow": WORKFLOW})
        return posted

    def step(self, run_id: str, **sets: Any) -> None:
        self.ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": run_id}, "sk": {"S": "STEP#approval"}},
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in sets) + " REMOVE wait_token",
            ExpressionAttributeNames={f"#{k}": k for k in sets},
            ExpressionAttributeValues={f":{k}": to_attribute(v) for k, v in sets.items()},
        )

    def end_run(self, run_id: str, status: str, **more: Any) -> None:
        """Write the RUN item as the engine does; keep the stream record (old and new images) it makes."""
        fields = {"status": status, "ended_at": "2026-11-21T11:16:00.5+00:00"} | more
        key = {"pk": {"S": run_id}, "sk": {"S": RUN_SK}}
        answer = self.ddb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET " + ", ".join(f"#{k} = :{k}" for k in fields),
            ExpressionAttributeNames={f"#{k}": k for k in fields},
            ExpressionAttributeValues={f":{k}": to_attribute(v) for k, v in fields.items()},
            ReturnValues="ALL_OLD",
        )
        new = self.ddb.get_item(TableName=TABLE, Key=key, ConsistentRead=True)["Item"]
        self.sequence += 1
        change = {"Keys": key, "OldImage": answer["Attributes"], "NewImage": new}
        self.pending.append(
            {
                "eventID": f"e{self.sequence}",
                "eventName": "MODIFY",
                "eventSource": "aws:dynamodb",
                "eventSourceARN": f"arn:aws:dynamodb:us-east-1:123456789012:table/{TABLE}/stream/1",
                "dynamodb": change
                | {"SequenceNumber": str(self.sequence), "StreamViewType": "NEW_AND_OLD_IMAGES"},
            }
        )

    def records(self) -> list[dict[str, Any]]:
        """The stream records written since the last call, as Lambda receives them."""
        records, self.pending = self.pending, []
        return records

    def deliver(self, records: list[dict[str, Any]], context: Any) -> None:
        """Invoke the run-events Lambda with these records; none may fail."""
        answer = run_events.lambda_handler({"Records": records}, context)
        assert answer == {"batchItemFailures": []}

    def inbox_of(self, who: str) -> list[str]:
        return [str(i["run_id"]) for i in self.store.inbox(who)]

    def message(self, posted: dict[str, str]) -> dict[str, Any]:
        return self.slack.messages[(posted["channel"], posted["ts"])]


@pytest.fixture
def world(flowdeck_aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    ddb, _ = flowdeck_aws
    with FakeSlack(token=BOT_TOKEN) as slack:
        monkeypatch.setenv("FLOWDECK_SLACK_API_URL", slack.api_url)
        monkeypatch.setenv("FLOWDECK_DELIVERIES_TABLE", DELIVERIES)
        get_settings.cache_clear()
        ddb.create_table(**create_deliveries_table_kwargs(DELIVERIES))
        world = World(ddb, slack)
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="flowdeck/slack", SecretString=json.dumps({"bot_token": BOT_TOKEN, "signing_secret": "s"})
        )
        yield world
    get_settings.cache_clear()


def buttons(message: dict[str, Any]) -> set[str]:
    return {e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def shown(message: dict[str, Any]) -> str:
    return json.dumps(message["blocks"], ensure_ascii=False)


def test_a_timed_out_approval_loses_its_buttons_says_when_and_leaves_the_inbox(
    world: World, lambda_context: Any
) -> None:
    posted = world.waiting(
        "run-timeout", approvals=[{"by": SAM, "at": "2026-11-21T10:20:00+00:00", "channel": "slack"}]
    )
    world.records()
    # What the state machine writes at the deadline: the step, then the run.
    world.step("run-timeout", status="failed", error="ApprovalTimedOut", ended_at="2026-11-21T11:16:00+00:00")
    world.end_run("run-timeout", "failed", error="ApprovalTimedOut")

    world.deliver(world.records(), lambda_context)

    message = world.message(posted)
    assert message["updates"] == 1
    assert buttons(message) == {OPEN_ACTION}
    assert "Timed out at <!date^" in shown(message)
    assert "|2026-11-21T11:16:00+00:00>" in shown(message)
    assert "1 of 2 approvals" in shown(message)
    assert "Approved by sam@example.com via slack" in shown(message)  # the approval so far still shown
    assert message["text"] == f"Approval {WORKFLOW} / approval: Timed out at 2026-11-21T11:16:00+00:00"
    assert world.inbox_of(JANE) == [] and world.inbox_of(SAM) == []
    assert len(world.slack.calls_of("chat.postMessage")) == 1


def test_a_cancelled_approval_says_who_cancelled_and_why_even_before_the_step_is_recorded(
    world: World, lambda_context: Any
) -> None:
    posted = world.waiting("run-cancel")
    world.waiting("run-other")  # another run's approval stays as it is
    world.records()
    # The cancel records the run first; the step is still `waiting` when the record is handled.
    world.end_run("run-cancel", "cancelled", cancelled_by="bob@example.com", cancel_reason="wrong branch")

    world.deliver(world.records(), lambda_context)

    message = world.message(posted)
    assert buttons(message) == {OPEN_ACTION}
    assert "Cancelled by bob@example.com: wrong branch" in shown(message)
    assert message["text"] == f"Approval {WORKFLOW} / approval: Cancelled by bob@example.com: wrong branch"
    assert world.inbox_of(JANE) == ["run-other"] and world.inbox_of(SAM) == ["run-other"]
    assert len(world.slack.calls_of("chat.update")) == 1


def test_the_default_cancel_reason_is_not_repeated(world: World, lambda_context: Any) -> None:
    posted = world.waiting("run-cancel-2")
    world.records()
    world.step("run-cancel-2", status="cancelled", error="Cancelled", cause="cancelled by bob@example.com")
    world.end_run(
        "run-cancel-2",
        "cancelled",
        cancelled_by="bob@example.com",
        cancel_reason="cancelled by bob@example.com",
    )

    world.deliver(world.records(), lambda_context)

    assert "Cancelled by bob@example.com · 0 of 2 approvals" in shown(world.message(posted))


def test_a_run_failing_elsewhere_while_the_approval_waits_says_the_run_ended(
    world: World, lambda_context: Any
) -> None:
    posted = world.waiting("run-failed")
    world.records()
    world.end_run("run-failed", "failed", error="StepFailed")

    world.deliver(world.records(), lambda_context)

    message = world.message(posted)
    assert buttons(message) == {OPEN_ACTION}
    assert "Run ended: failed (StepFailed) at <!date^" in shown(message)
    assert world.inbox_of(JANE) == []


def test_a_redelivered_record_changes_nothing_more(world: World, lambda_context: Any) -> None:
    posted = world.waiting("run-again")
    world.records()
    world.end_run("run-again", "cancelled", cancelled_by="bob@example.com", cancel_reason="not today")
    records = world.records()
    world.deliver(records, lambda_context)
    after_first = (dict(world.message(posted)), len(world.slack.calls))

    # At least once: the same record again, and later writes to the finished run (its duration).
    world.deliver(records, lambda_context)
    world.end_run("run-again", "cancelled", duration_ms=3600)
    world.deliver(world.records(), lambda_context)

    assert (world.message(posted), len(world.slack.calls)) == after_first
    assert world.message(posted)["updates"] == 1
    assert world.slack.calls_of("chat.postMessage")[1:] == []  # the one request posted, never again
    assert world.inbox_of(JANE) == []


def test_approved_and_rejected_approvals_are_left_as_their_decision_left_them(
    world: World, lambda_context: Any
) -> None:
    approved = world.waiting("run-approved")
    rejected = world.waiting("run-rejected")
    world.records()
    world.step("run-approved", status="succeeded", ended_at="2026-11-21T10:30:00+00:00")
    world.step("run-rejected", status="failed", error="ApprovalRejected", cause=f"rejected by {JANE}")
    world.end_run("run-approved", "failed", error="StepFailed")  # a later step failed
    world.end_run("run-rejected", "failed", error="ApprovalRejected")

    world.deliver(world.records(), lambda_context)

    for posted in (approved, rejected):
        assert world.message(posted)["updates"] == 0
        assert buttons(world.message(posted)) == {OPEN_ACTION, APPROVE_ACTION, REJECT_ACTION}
    assert world.slack.calls_of("chat.update") == []


def test_slack_down_or_not_configured_is_logged_and_the_inbox_still_closed(
    world: World, lambda_context: Any, caplog: pytest.LogCaptureFixture
) -> None:
    world.waiting("run-down")
    world.waiting("run-unconfigured")
    world.records()
    world.end_run("run-down", "timed_out")
    world.slack.token = "xoxb-revoked"  # Slack answers invalid_auth

    with caplog.at_level(logging.WARNING, logger="flowdeck.approvals"):
        world.deliver(world.records(), lambda_context)

    assert "its Slack message was not updated: chat.update failed: invalid_auth" in caplog.text
    assert world.inbox_of(JANE) == ["run-unconfigured"]
    assert "closed" not in (world.store.get_step("run-down", "approval") or {})["approval"]

    # No secret at all: Slack is skipped quietly (e-mail and the inbox work without it).
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId="flowdeck/slack", ForceDeleteWithoutRecovery=True
    )
    closer = EndedApprovals(world.runs, SlackApprovals(), Directory())
    world.end_run("run-unconfigured", "cancelled", cancelled_by="bob@example.com")
    calls = len(world.slack.calls)
    for record in world.records():
        if change := run_change(record):
            closer.on_run_change(*change)

    assert len(world.slack.calls) == calls
    assert world.inbox_of(JANE) == [] and world.inbox_of(SAM) == []
