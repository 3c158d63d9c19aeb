"""Approvals against moto: the notifier's record (idempotent), decisions (policy, counts, races), inbox."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any, Literal

import boto3
import pytest
from botocore.exceptions import ClientError
from moto import mock_aws

from flowdeck.approvals.decisions import ApprovalDecisions, ApprovalNotWaiting
from flowdeck.approvals.directory import Directory, TeamsFile
from flowdeck.approvals.inbox import Inbox
from flowdeck.approvals.links import LinkClaims, LinkKey, sign, verify
from flowdeck.approvals.notifier import MAX_DELIVERY_ATTEMPTS, ApprovalNotifier, DeliveryFailed
from flowdeck.control.owed_answers import AnswerSender
from flowdeck.control.pause import StepNotFound
from flowdeck.errors import NotAllowed, RunNotFound
from flowdeck.stores.items import to_item
from flowdeck.stores.outbox import Outbox
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import create_table_kwargs
from lambdas import api as api_module
from tests.integration.conftest import TABLE
from tests.integration.test_api import Api, api_event, assert_error
from tests.integration.test_api import api as api  # the fixture, shared
from tests.integration.test_worker import FakeStepFunctions

RUN_ID = "20261121-101500-abcd0123"
JANE, SAM, OUTSIDER = "jane@example.com", "sam@example.com", "mallory@example.com"
ENTERED = "2026-11-21T10:16:00.000Z"
SENDER = "flowdeck@example.com"


class GoneStepFunctions(FakeStepFunctions):
    """A token that no longer waits: the deadline passed or the run was cancelled first."""

    def send_task_success(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "gone"}}, "SendTaskSuccess")


class DownSes:
    """SES answering errors (an outage)."""

    def send_email(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "Throttling", "Message": "slow down"}}, "SendEmail")


class World:
    def __init__(self) -> None:
        self.ddb = boto3.client("dynamodb", region_name="us-east-1")
        self.ddb.create_table(**create_table_kwargs(TABLE))
        self.ses = boto3.client("ses", region_name="us-east-1")
        self.ses.verify_email_identity(EmailAddress=SENDER)
        self.key = LinkKey(
            "flowdeck/approvals/link-key", boto3.client("secretsmanager", region_name="us-east-1")
        )
        self.key.ensure()
        self.runs = RunStore(TABLE, self.ddb)
        self.sfn = FakeStepFunctions()
        self.directory = Directory(TeamsFile.model_validate({"teams": {"platform": [JANE, SAM]}}), None)
        self.outbox = Outbox(self.ddb, TABLE)

    def notifier(self, ses: Any = None, dashboard_url: str = "") -> ApprovalNotifier:
        return ApprovalNotifier(
            self.runs,
            self.sfn,
            ses or self.ses,
            self.key,
            self.directory,
            "http://flowdeck.test",
            SENDER,
            slack=None,
            outbox=self.outbox,
            dashboard_url=dashboard_url,
        )

    def decisions(self, sfn: Any = None) -> ApprovalDecisions:
        return ApprovalDecisions(self.runs, sfn or self.sfn, self.directory)

    def seed_run(self, status: str = "running") -> None:
        plan = [
            {"id": "plan", "kind": "run"},
            {"id": "approval", "kind": "approval"},
            {"id": "apply", "kind": "run"},
        ]
        item = {"pk": RUN_ID, "sk": "RUN", "workflow": "deploy", "status": status, "plan": plan}
        self.ddb.put_item(TableName=TABLE, Item=to_item(item))
        outputs = {"pk": RUN_ID, "sk": "OUTPUTS", "outputs#plan": {"add": 3}}
        self.ddb.put_item(TableName=TABLE, Item=to_item(outputs))

    def step(self) -> dict[str, Any]:
        return self.runs.get_run_items(RUN_ID)[1].get("approval", {})

    def run_status(self) -> str:
        return str((self.runs.get_run_items(RUN_ID)[0] or {}).get("status"))


def message(
    users: list[str] | None = None, min_approvals: int = 2, channels: list[str] | None = None, **more: Any
) -> dict[str, Any]:
    return {
        "type": "approval",
        "token": "approval-token-1",
        "run_id": RUN_ID,
        "workflow": "deploy",
        "step": "approval",
        "entered_at": ENTERED,
        "timeout_seconds": 3600,
        "inputs": {"environment": "staging"},
        "approval": {
            "approvers": {
                "users": [JANE, SAM] if users is None else users,
                "groups": [],
                "any_member": False,
            },
            "min_approvals": min_approvals,
            "channels": channels or ["email", "inbox"],
            "timeout": 3600,
            "message": "Apply {{ steps.plan.outputs.add }} additions to {{ inputs.environment }}?",
        }
        | more,
    }


@pytest.fixture
def world() -> Any:
    with mock_aws():
        yield World()


def requested(world: World, **kwargs: Any) -> None:
    world.seed_run()
    assert world.notifier().handle(message(**kwargs)) is True


# -- the notifier ---------------------------------------------------------------------------------
def test_the_request_is_recorded_with_its_message_deadline_and_links_and_the_run_waits(world: World) -> None:
    requested(world)

    step = world.step()
    approval = step["approval"]
    assert step["status"] == "waiting" and step["wait_token"] == "approval-token-1"
    assert world.run_status() == "waiting"
    assert approval["message"] == "Apply 3 additions to staging?"
    assert approval["deadline"] == "2026-11-21T11:16:00+00:00"
    assert approval["link"] == f"http://flowdeck.test/runs/{RUN_ID}"
    assert approval["links"]["artifacts"] == f"http://flowdeck.test/runs/{RUN_ID}/artifacts"
    assert approval["delivered"]["email_to"] == [JANE, SAM]
    emails = world.outbox.emails(RUN_ID)
    assert [e["to"] for e in emails] == [JANE, SAM]
    approve = verify(emails[0]["links"]["approve"].rsplit("/", 1)[1], world.key.get(), now=0)
    assert (approve.run, approve.step, approve.approver, approve.decision) == (
        RUN_ID,
        "approval",
        JANE,
        "approve",
    )
    assert approve.exp == int(datetime(2026, 11, 21, 11, 16, tzinfo=UTC).timestamp())


def test_with_a_dashboard_the_email_links_the_runs_page_at_the_approval_step(world: World) -> None:
    world.seed_run()
    assert world.notifier(dashboard_url="https://dash.example/").handle(message()) is True

    approval = world.step()["approval"]
    page = f"https://dash.example/#/runs/{RUN_ID}?step=approval"
    assert approval["link"] == page
    assert approval["links"] == {"run": page}
    (email, *_) = world.outbox.emails(RUN_ID)
    assert f"Run: {page}" in email["body"]
    # The signed decision links stay on the API.
    assert email["links"]["approve"].startswith("http://flowdeck.test/approvals/")


def test_a_redelivered_request_changes_nothing_and_sends_no_second_email(world: World) -> None:
    requested(world)
    first = world.step()

    again = world.notifier().handle(message())

    assert again is False
    assert world.step() == first
    assert len(world.outbox.emails(RUN_ID)) == 2


def test_an_approval_a_retry_reused_from_its_earlier_run_is_answered_at_once(world: World) -> None:
    world.seed_run()
    reused = {
        "pk": RUN_ID,
        "sk": "STEP#approval",
        "step": "approval",
        "status": "succeeded",
        "reused_from": "old",
    }
    world.ddb.put_item(TableName=TABLE, Item=to_item(reused))

    assert world.notifier().handle(message()) is False

    assert [(kind, json.loads(kw["output"])) for kind, kw in world.sfn.answers()] == [
        ("success", {"decision": "reused", "reused_from": "old"})
    ]
    assert world.outbox.emails(RUN_ID) == []


def test_a_request_for_a_run_that_ended_fails_its_token_and_records_nothing(world: World) -> None:
    world.seed_run(status="cancelled")

    assert world.notifier().handle(message()) is False

    assert world.step() == {}
    assert [(kind, kw["error"]) for kind, kw in world.sfn.answers()] == [("failure", "RunNotRunning")]


def test_an_email_outage_is_noted_retried_then_given_up_with_the_request_kept(world: World) -> None:
    world.seed_run()
    notifier = world.notifier(ses=DownSes())

    with pytest.raises(DeliveryFailed):
        notifier.handle(message(), receive_count=1)
    notifier.handle(message(), receive_count=MAX_DELIVERY_ATTEMPTS)

    step = world.step()
    assert step["status"] == "waiting"
    errors = step["approval"]["delivery_errors"]
    assert {e["channel"] for e in errors} == {"email"} and len(errors) == 6
    assert "Throttling" in errors[0]["error"]
    # The last attempt records each undelivered e-mail as failed for good.
    assert [(e["to"], e["error"], e.get("final")) for e in errors[4:]] == [
        (to, f"gave up after {MAX_DELIVERY_ATTEMPTS} attempts", True)
        for to in sorted(e["to"] for e in errors[:2])
    ]
    assert not any(e.get("final") for e in errors[:4])
    assert [a["step"] for a in Inbox(world.decisions().store, world.directory).waiting_for(JANE)] == [
        "approval"
    ]


# -- decisions ------------------------------------------------------------------------------------
def test_someone_not_named_gets_403_and_nothing_changes(world: World) -> None:
    requested(world)
    before = world.step()

    with pytest.raises(NotAllowed):
        world.decisions().decide(RUN_ID, "approval", OUTSIDER, "approve", "api")

    assert world.step() == before


def test_the_same_person_approving_twice_counts_once(world: World) -> None:
    requested(world)
    decisions = world.decisions()

    first = decisions.decide(RUN_ID, "approval", JANE, "approve", "api")
    second = decisions.decide(RUN_ID, "approval", "Jane@Example.com", "approve", "email")

    assert first["approved"] == second["approved"] == 1
    assert second["status"] == "waiting"
    assert world.sfn.answers() == []
    assert len(world.step()["decisions"]) == 1


def test_two_of_two_approve_the_step_once_and_the_run_runs_again(world: World) -> None:
    requested(world)
    decisions = world.decisions()

    decisions.decide(RUN_ID, "approval", JANE, "approve", "email", "looks fine")
    view = decisions.decide(RUN_ID, "approval", SAM, "approve", "inbox")

    assert view["status"] == "succeeded"
    assert view["approved_by"] == [JANE, SAM]
    assert [(d["by"], d["channel"], d.get("comment")) for d in view["decisions"]] == [
        (JANE, "email", "looks fine"),
        (SAM, "inbox", None),
    ]
    assert world.run_status() == "running"
    answers = world.sfn.answers()
    assert [(kind, kw["taskToken"]) for kind, kw in answers] == [("success", "approval-token-1")]
    assert json.loads(answers[0][1]["output"])["approved_by"] == [JANE, SAM]
    assert "wait_token" not in world.step()
    with pytest.raises(ApprovalNotWaiting):
        decisions.decide(RUN_ID, "approval", JANE, "reject", "api")


def test_one_reject_fails_the_step_with_who_and_the_comment(world: World) -> None:
    requested(world)
    decisions = world.decisions()
    decisions.decide(RUN_ID, "approval", JANE, "approve", "api")

    view = decisions.decide(RUN_ID, "approval", SAM, "reject", "api", "not on a Friday")

    assert view["status"] == "failed"
    assert (view["error"], view["cause"]) == ("ApprovalRejected", f"rejected by {SAM}: not on a Friday")
    assert [(k, kw["error"], kw["cause"]) for k, kw in world.sfn.answers()] == [
        ("failure", "ApprovalRejected", f"rejected by {SAM}: not on a Friday")
    ]
    assert Inbox(decisions.store, world.directory).waiting_for(JANE) == []


def test_a_decision_after_the_deadline_or_a_cancel_is_409(world: World) -> None:
    requested(world, min_approvals=1)

    with pytest.raises(ApprovalNotWaiting):
        world.decisions(GoneStepFunctions()).decide(RUN_ID, "approval", JANE, "approve", "api")
    # The timed-out state machine records the step failed: later decisions find it not waiting.
    world.ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": RUN_ID}, "sk": {"S": "STEP#approval"}},
        UpdateExpression="SET #s = :f, #e = :e REMOVE wait_token",
        ExpressionAttributeNames={"#s": "status", "#e": "error"},
        ExpressionAttributeValues={":f": {"S": "failed"}, ":e": {"S": "ApprovalTimedOut"}},
    )
    with pytest.raises(ApprovalNotWaiting, match="is failed"):
        world.decisions().decide(RUN_ID, "approval", SAM, "approve", "api")


def test_unknown_run_or_step_is_404(world: World) -> None:
    requested(world)
    with pytest.raises(RunNotFound):
        world.decisions().decide("nope", "approval", JANE, "approve", "api")
    with pytest.raises(StepNotFound):
        world.decisions().decide(RUN_ID, "nope", JANE, "approve", "api")


def test_approvals_at_once_lose_none_and_answer_the_token_once(world: World) -> None:
    people = [f"p{i}@example.com" for i in range(6)]
    requested(world, users=people, min_approvals=4)
    # Separate ApprovalDecisions objects, as separate Lambda containers would be; threads race.
    barrier = threading.Barrier(len(people))
    errors: list[BaseException] = []

    def approve(person: str) -> None:
        barrier.wait()
        try:
            world.decisions().decide(RUN_ID, "approval", person, "approve", "api")
        except ApprovalNotWaiting:
            pass  # arrived after the 4th approval ended the wait: a 409 is the right answer
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=approve, args=(p,)) for p in people]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    step = world.step()
    approvers = [a["by"] for a in step["approval"]["approvals"]]
    assert step["status"] == "succeeded"
    assert len(approvers) == len(set(approvers)) == 4
    assert [d["by"] for d in step["decisions"]] == approvers
    assert [kind for kind, _ in world.sfn.answers()] == ["success"]


def test_group_members_may_decide_and_see_it_in_their_inbox(world: World) -> None:
    world.seed_run()
    world.notifier().handle(
        message(users=[], min_approvals=1, groups=[])
        | {
            "approval": message()["approval"]
            | {"approvers": {"users": [], "groups": ["platform"]}, "min_approvals": 1}
        }
    )
    inbox = Inbox(world.decisions().store, world.directory)

    assert [a["run_id"] for a in inbox.waiting_for(SAM)] == [RUN_ID]
    assert inbox.waiting_for(OUTSIDER) == []
    assert world.decisions().decide(RUN_ID, "approval", SAM, "approve", "inbox")["status"] == "succeeded"
    assert inbox.waiting_for(JANE) == []


# -- the API --------------------------------------------------------------------------------------
def test_api_approve_as_outsider_is_403_and_inbox_lists_it_for_an_approver(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = [{"id": "approval", "kind": "approval"}]
    api.seed_run(RUN_ID, "deploy", ENTERED, status="waiting", plan=plan)
    approval = {
        "approvers": {"users": [JANE, SAM], "groups": [], "any_member": False},
        "min_approvals": 2,
        "channels": ["inbox"],
        "message": "Go?",
        "deadline": "2999-01-01T00:00:00+00:00",
        "approvals": [],
    }
    api.seed_step(
        RUN_ID, "approval", status="waiting", wait_token="tok", approval=approval, approval_version=0
    )
    api.put(
        {
            "pk": f"INBOX#{JANE}",
            "sk": f"{RUN_ID}#approval",
            "run_id": RUN_ID,
            "step": "approval",
            "summary": {"workflow": "deploy"},
        }
    )

    refused = api.invoke(api_event("POST", f"/runs/{RUN_ID}/steps/approval/approve", user=OUTSIDER))
    assert_error(refused, 403, "NotAllowed")
    status, inbox = api.invoke(api_event("GET", "/inbox", user=JANE))
    assert status == 200
    assert [(a["run_id"], a["step"], a["workflow"]) for a in inbox["approvals"]] == [
        (RUN_ID, "approval", "deploy")
    ]
    status, body = api.invoke(
        api_event(
            "POST", f"/runs/{RUN_ID}/steps/approval/approve", body=json.dumps({"comment": "ok"}), user=JANE
        )
    )
    assert (status, body["approved"], body["status"]) == (202, 1, "waiting")
    assert api.invoke(api_event("GET", "/inbox", user=JANE))[1]["approvals"] == []
    assert_error(
        api.invoke(api_event("POST", f"/runs/{RUN_ID}/steps/nope/approve", user=JANE)), 404, "StepNotFound"
    )
    assert_error(
        api.invoke(
            api_event("POST", f"/runs/{RUN_ID}/steps/approval/reject", body=json.dumps({"x": 1}), user=JANE)
        ),
        422,
        "ValidationError",
    )


def test_email_links_expired_forged_and_used_answer_clear_pages(api: Api) -> None:
    key = LinkKey("flowdeck/approvals/link-key", boto3.client("secretsmanager", region_name="us-east-1"))
    key.ensure()
    plan = [{"id": "approval", "kind": "approval"}]
    api.seed_run(RUN_ID, "deploy", ENTERED, status="waiting", plan=plan)
    approval = {
        "approvers": {"users": [JANE, SAM], "groups": [], "any_member": False},
        "min_approvals": 2,
        "message": "Go?",
        "approvals": [],
    }
    api.seed_step(
        RUN_ID, "approval", status="waiting", wait_token="tok", approval=approval, approval_version=0
    )
    expired = sign(LinkClaims(RUN_ID, "approval", JANE, "approve", 1_000), key.get())
    good = sign(LinkClaims(RUN_ID, "approval", JANE, "approve", 4_000_000_000), key.get())

    def call(method: str, token: str, body: str | None = None) -> tuple[int, str]:
        event = api_event(method, f"/approvals/{token}", user=None)
        event["body"] = body
        answer = api_module.lambda_handler(event, api.context)
        return answer["statusCode"], answer["body"]

    assert call("GET", expired)[0] == 410
    assert call("GET", good[:-2] + "xx")[0] == 401
    status, page = call("GET", good)
    assert status == 200 and "<form method='post'>" in page and "Go?" in page
    assert api.ddb.get_item(TableName=TABLE, Key={"pk": {"S": RUN_ID}, "sk": {"S": "STEP#approval"}})["Item"][
        "approval_version"
    ] == {"N": "0"}
    status, page = call("POST", good, "comment=fine+by+me")
    assert status == 200 and "Decision recorded" in page
    assert call("POST", good, "")[0] == 409
    item = api.ddb.get_item(TableName=TABLE, Key={"pk": {"S": RUN_ID}, "sk": {"S": "STEP#approval"}})["Item"]
    decisions = item["decisions"]["L"]
    assert len(decisions) == 1
    assert decisions[0]["M"]["comment"] == {"S": "fine by me"}
    assert decisions[0]["M"]["channel"] == {"S": "email"}


class ProcessDied(BaseException):
    """Stands for the API process dying (not an error it could catch and report)."""


class DyingStepFunctions(FakeStepFunctions):
    """The API process dies after recording the decision, before its answer reaches Step Functions."""

    def send_task_success(self, **kwargs: Any) -> None:
        raise ProcessDied

    def send_task_failure(self, **kwargs: Any) -> None:
        raise ProcessDied


@pytest.mark.parametrize(
    ("decision", "answer"),
    [("approve", ("success", None)), ("reject", ("failure", "ApprovalRejected"))],
)
def test_a_decision_whose_answer_was_lost_is_sent_later_without_anyone_asking_again(
    world: World, decision: Literal["approve", "reject"], answer: tuple[str, str | None]
) -> None:
    requested(world, min_approvals=1)

    with pytest.raises(ProcessDied):
        world.decisions(DyingStepFunctions()).decide(RUN_ID, "approval", JANE, decision, "api")

    # The decision is recorded with the answer it owes; nothing reached the waiting state.
    step = world.step()
    assert step["owed_answer"] and world.sfn.answers() == []
    # The run-events reaction gets the step's change (at least once) and sends the owed answer.
    sender = AnswerSender(world.runs, world.sfn)
    sender.on_step_change(None, step)
    sender.on_step_change(None, step)
    assert [(kind, kw.get("error")) for kind, kw in world.sfn.answers()] == [answer]
    assert world.sfn.answers()[0][1]["taskToken"] == "approval-token-1"
    assert "owed_answer" not in world.step()
    assert world.run_status() == ("running" if decision == "approve" else "waiting")


class AnsweredMeanwhile(FakeStepFunctions):
    """The reaction sends the owed answer while the API is about to: the API then finds it gone."""

    def __init__(self, world: World) -> None:
        super().__init__()
        self.world = world

    def send_task_success(self, **kwargs: Any) -> None:
        AnswerSender(self.world.runs, self.world.sfn).pay_owed(RUN_ID, "approval")
        raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "answered"}}, "SendTaskSuccess")


def test_an_answer_the_reaction_sent_first_still_counts_as_the_decision_moving_the_run(world: World) -> None:
    requested(world, min_approvals=1)

    view = world.decisions(AnsweredMeanwhile(world)).decide(RUN_ID, "approval", JANE, "approve", "api")

    assert view["status"] == "succeeded"
    assert [kind for kind, _ in world.sfn.answers()] == ["success"]
    assert "owed_answer" not in world.step()
