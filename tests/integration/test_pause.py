"""A step paused on failure against moto: the worker's wait record and the Retry/Skip decisions."""

from __future__ import annotations

import json
from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowdeck.control.owed_answers import AnswerSender
from flowdeck.control.pause import PauseDecisions, SkipNotAllowed, StepDecision, StepNotFound, StepNotWaiting
from flowdeck.control.permissions import open_to_all
from flowdeck.errors import RunNotFound
from flowdeck.messages import WaitMessage
from flowdeck.runner.pause import PauseRecorder, wait_deadline
from flowdeck.stores.items import from_item, to_item
from flowdeck.stores.runs import RunStore
from tests.integration.conftest import TABLE
from tests.integration.test_api import Api, assert_error
from tests.integration.test_worker import FakeStepFunctions

RUN_ID = "20261121-101500-abcd0123"
ENTERED = "2026-11-21T10:16:00.000Z"


class GoneStepFunctions(FakeStepFunctions):
    """A token that no longer waits: the deadline passed first."""

    def send_task_success(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "TaskTimedOut", "Message": "gone"}}, "SendTaskSuccess")


@pytest.fixture
def runs(runs_ddb: Any) -> RunStore:
    return RunStore(TABLE, runs_ddb)


def seed(ddb: Any, run_status: str = "running", **steps: dict[str, Any]) -> None:
    plan = [{"M": {"id": {"S": s}, "kind": {"S": "run"}}} for s in ["plan", "apply", "other"]]
    ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": RUN_ID},
            "sk": {"S": "RUN"},
            "workflow": {"S": "deploy"},
            "status": {"S": run_status},
            "plan": {"L": plan},
        },
    )
    for step, fields in steps.items():
        item = {"pk": RUN_ID, "sk": f"STEP#{step}", "step": step} | fields
        ddb.put_item(TableName=TABLE, Item=to_item(item))


def failed_apply(**more: Any) -> dict[str, Any]:
    attempt = {"attempt": 1, "status": "failed", "error": "StepFailed", "cause": "exit code 1"}
    return {
        "status": "failed",
        "attempt": 1,
        "token": "a" * 32,
        "error": "StepFailed",
        "cause": "exit code 1",
        "attempt#1": attempt,
    } | more


def wait_message(entered: str = ENTERED, allow_skip: bool = False) -> WaitMessage:
    return WaitMessage.model_validate(
        {
            "type": "wait",
            "reason": "paused",
            "token": "wait-token-1",
            "run_id": RUN_ID,
            "workflow": "deploy",
            "step": "apply",
            "entered_at": entered,
            "timeout_seconds": 3600,
            "allow_skip": allow_skip,
        }
    )


def item(ddb: Any, sk: str) -> dict[str, Any]:
    return from_item(ddb.get_item(TableName=TABLE, Key={"pk": {"S": RUN_ID}, "sk": {"S": sk}})["Item"])


# -- the worker's wait record ---------------------------------------------------------------------


def test_wait_message_marks_the_step_and_the_run_waiting_keeping_the_error(runs_ddb, runs):
    seed(runs_ddb, apply=failed_apply())
    sfn = FakeStepFunctions()

    assert PauseRecorder(runs, sfn).handle(wait_message(allow_skip=True)) is True

    step = item(runs_ddb, "STEP#apply")
    assert step["status"] == "waiting"
    assert step["wait_token"] == "wait-token-1"
    assert step["waiting_since"] == ENTERED
    assert step["wait_deadline"] == "2026-11-21T11:16:00+00:00"
    assert step["allow_skip"] is True
    assert (step["error"], step["cause"]) == ("StepFailed", "exit code 1")
    run = item(runs_ddb, "RUN")
    assert (run["status"], run["workflow_status"]) == ("waiting", "deploy#waiting")
    assert sfn.calls == []  # the token waits: nothing answers it


def test_redelivered_wait_message_changes_nothing(runs_ddb, runs):
    seed(runs_ddb, apply=failed_apply())
    recorder = PauseRecorder(runs, FakeStepFunctions())
    recorder.handle(wait_message())

    assert recorder.handle(wait_message()) is True  # same token: the same record again
    assert item(runs_ddb, "STEP#apply")["wait_token"] == "wait-token-1"


def test_stale_wait_message_after_a_decision_is_dropped(runs_ddb, runs):
    seed(runs_ddb, apply=failed_apply())
    sfn = FakeStepFunctions()
    recorder = PauseRecorder(runs, sfn)
    recorder.handle(wait_message())
    PauseDecisions(runs, sfn, open_to_all()).decide(RUN_ID, "apply", "retry", StepDecision(), "jane")

    assert recorder.handle(wait_message()) is False

    assert item(runs_ddb, "STEP#apply")["status"] == "pending"
    assert item(runs_ddb, "RUN")["status"] == "running"


def test_wait_for_a_run_cancelled_meanwhile_fails_the_token_at_once(runs_ddb, runs):
    seed(runs_ddb, run_status="cancelled", apply=failed_apply())
    sfn = FakeStepFunctions()

    assert PauseRecorder(runs, sfn).handle(wait_message()) is False

    assert [(kind, kwargs["error"]) for kind, kwargs in sfn.calls] == [("failure", "RunNotRunning")]
    assert item(runs_ddb, "STEP#apply")["status"] == "cancelled"
    assert item(runs_ddb, "RUN")["status"] == "cancelled"


def test_wait_for_a_step_the_budget_guard_cancelled_fails_the_token(runs_ddb, runs):
    seed(runs_ddb, run_status="cancelled", apply=failed_apply(status="cancelled", error="BudgetExceeded"))
    sfn = FakeStepFunctions()

    assert PauseRecorder(runs, sfn).handle(wait_message()) is False

    assert [kind for kind, _ in sfn.calls] == ["failure"]
    assert item(runs_ddb, "STEP#apply")["status"] == "cancelled"


# -- decisions ------------------------------------------------------------------------------------


@pytest.fixture
def paused(runs_ddb: Any, runs: RunStore) -> FakeStepFunctions:
    seed(runs_ddb, apply=failed_apply())
    sfn = FakeStepFunctions()
    PauseRecorder(runs, sfn).handle(wait_message())
    return sfn


def test_retry_step_records_the_decision_resumes_the_run_and_answers_the_token(runs_ddb, runs, paused):
    decided = PauseDecisions(runs, paused, open_to_all()).decide(
        RUN_ID, "apply", "retry", StepDecision(comment="lock released"), "jane"
    )

    assert (decided.status, decided.next_attempt, decided.by) == ("pending", 2, "jane")
    step = item(runs_ddb, "STEP#apply")
    assert step["status"] == "pending"
    assert "wait_token" not in step
    assert step["decisions"] == [
        {"decision": "retry", "by": "jane", "at": decided.at, "after_attempt": 1, "comment": "lock released"}
    ]
    assert item(runs_ddb, "RUN")["workflow_status"] == "deploy#running"
    assert [(kind, json.loads(kwargs["output"])) for kind, kwargs in paused.calls] == [
        ("success", {"decision": "retry", "attempts": 1})
    ]
    assert paused.calls[0][1]["taskToken"] == "wait-token-1"


def test_second_decision_on_the_same_pause_is_a_conflict(runs, paused):
    decisions = PauseDecisions(runs, paused, open_to_all())
    decisions.decide(RUN_ID, "apply", "retry", StepDecision(), "jane")

    with pytest.raises(StepNotWaiting):
        decisions.decide(RUN_ID, "apply", "retry", StepDecision(), "joe")
    assert len(paused.calls) == 1


def test_skip_without_allow_skip_is_refused_and_changes_nothing(runs_ddb, runs, paused):
    with pytest.raises(SkipNotAllowed) as refused:
        PauseDecisions(runs, paused, open_to_all()).decide(RUN_ID, "apply", "skip", StepDecision(), "jane")

    assert refused.value.status == 409
    assert item(runs_ddb, "STEP#apply")["status"] == "waiting"
    assert paused.calls == []


def test_skip_step_records_it_skipped_and_moves_on(runs_ddb, runs):
    seed(runs_ddb, apply=failed_apply())
    sfn = FakeStepFunctions()
    PauseRecorder(runs, sfn).handle(wait_message(allow_skip=True))

    PauseDecisions(runs, sfn, open_to_all()).decide(RUN_ID, "apply", "skip", StepDecision(), "jane")

    assert item(runs_ddb, "STEP#apply")["status"] == "skipped"
    assert json.loads(sfn.calls[0][1]["output"]) == {"decision": "skip", "attempts": 1}


def test_unknown_run_step_or_a_step_that_never_paused(runs, paused):
    decisions = PauseDecisions(runs, paused, open_to_all())
    with pytest.raises(RunNotFound):
        decisions.decide("20990101-000000-00000000", "apply", "retry", StepDecision(), "jane")
    with pytest.raises(StepNotFound):
        decisions.decide(RUN_ID, "nope", "retry", StepDecision(), "jane")
    with pytest.raises(StepNotWaiting):
        decisions.decide(RUN_ID, "plan", "retry", StepDecision(), "jane")


def test_run_stays_waiting_while_another_step_is_paused(runs_ddb, runs):
    seed(runs_ddb, apply=failed_apply(), other=failed_apply(status="waiting", wait_token="t2"))
    sfn = FakeStepFunctions()
    PauseRecorder(runs, sfn).handle(wait_message())

    PauseDecisions(runs, sfn, open_to_all()).decide(RUN_ID, "apply", "retry", StepDecision(), "jane")

    assert item(runs_ddb, "RUN")["status"] == "waiting"


def test_decision_after_the_deadline_passed_is_a_conflict(runs, paused):
    with pytest.raises(StepNotWaiting):
        PauseDecisions(runs, GoneStepFunctions(), open_to_all()).decide(
            RUN_ID, "apply", "retry", StepDecision(), "jane"
        )


def test_retry_after_a_lost_worker_closes_its_attempt_and_lets_the_next_one_start(runs_ddb, runs):
    lost = failed_apply(token="lost", error="WorkerLost", cause="stopped answering")
    lost["attempt#1"] = {"attempt": 1, "status": "running"}
    seed(runs_ddb, apply=lost)
    sfn = FakeStepFunctions()
    PauseRecorder(runs, sfn).handle(wait_message())

    PauseDecisions(runs, sfn, open_to_all()).decide(RUN_ID, "apply", "retry", StepDecision(), "jane")
    started = runs.start_attempt(RUN_ID, "apply", "new-token", 2, {"status": "running"})

    assert started is not None
    step = item(runs_ddb, "STEP#apply")
    assert step["attempt#1"]["status"] == "failed"
    assert step["attempt#1"]["error"] == "WorkerLost"
    assert step["attempt#2"]["status"] == "running"
    assert [d["decision"] for d in step["decisions"]] == ["retry"]


# -- the API's edge -------------------------------------------------------------------------------


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    seed(flowdeck_aws[0], apply=failed_apply(status="waiting", wait_token="t1"))
    return Api(*flowdeck_aws, lambda_context)


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ("{not json", 400, "BadRequest"),
        ('{"comment": "x", "force": true}', 422, "ValidationError"),
        (json.dumps({"comment": "x" * 1001}), 422, "ValidationError"),
        ('["retry"]', 422, "ValidationError"),
    ],
)
def test_malformed_decision_is_refused_and_changes_nothing(
    api: Api, body: str, status: int, code: str
) -> None:
    assert_error(api.call("POST", f"/runs/{RUN_ID}/steps/apply/retry", body=body), status, code)
    assert item(api.ddb, "STEP#apply")["status"] == "waiting"


def test_decision_errors_have_the_spec_shape(api: Api) -> None:
    assert_error(api.call("POST", f"/runs/{RUN_ID}/steps/apply/skip"), 409, "SkipNotAllowed")
    assert_error(api.call("POST", f"/runs/{RUN_ID}/steps/plan/retry"), 409, "StepNotWaiting")
    assert_error(api.call("POST", f"/runs/{RUN_ID}/steps/nope/retry"), 404, "StepNotFound")
    assert_error(api.call("POST", "/runs/20990101-000000-00000000/steps/apply/retry"), 404, "RunNotFound")


@pytest.mark.parametrize(
    ("entered", "deadline"),
    [
        ("2026-11-21T10:16:00.123Z", "2026-11-21T11:16:00.123000+00:00"),
        ("2026-11-21T10:16:00+00:00", "2026-11-21T11:16:00+00:00"),
        ("2026-11-21T10:16:00", "2026-11-21T11:16:00+00:00"),
    ],
)
def test_wait_deadline_is_the_entry_time_plus_the_pause_timeout(entered: str, deadline: str) -> None:
    assert wait_deadline(entered, 3600) == deadline


class ProcessDied(BaseException):
    """Stands for the API process dying (not an error it could catch and report)."""


class DyingStepFunctions(FakeStepFunctions):
    """The API process dies after recording the decision, before its answer reaches Step Functions."""

    def send_task_success(self, **kwargs: Any) -> None:
        raise ProcessDied


@pytest.mark.parametrize("decision", ["retry", "skip"])
def test_a_retry_or_skip_whose_answer_was_lost_is_sent_by_the_run_events_reaction(runs_ddb, runs, decision):
    seed(runs_ddb, apply=failed_apply())
    PauseRecorder(runs, FakeStepFunctions()).handle(wait_message(allow_skip=True))

    with pytest.raises(ProcessDied):
        PauseDecisions(runs, DyingStepFunctions(), open_to_all()).decide(
            RUN_ID, "apply", decision, StepDecision(), "jane"
        )

    step = item(runs_ddb, "STEP#apply")
    assert step["status"] == ("pending" if decision == "retry" else "skipped")
    assert "owed_answer" in step
    sfn = FakeStepFunctions()
    sender = AnswerSender(runs, sfn)
    # Stream records arrive at least once: the answer is sent once all the same.
    sender.on_step_change(None, step)
    sender.on_step_change(None, step)
    assert [(kind, json.loads(kwargs["output"])) for kind, kwargs in sfn.calls] == [
        ("success", {"decision": decision, "attempts": 1})
    ]
    assert "owed_answer" not in item(runs_ddb, "STEP#apply")
    assert item(runs_ddb, "RUN")["status"] == "running"
