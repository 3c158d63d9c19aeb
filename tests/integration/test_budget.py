"""BudgetGuard against the runs table on moto, with a Step Functions that records its calls."""

from __future__ import annotations

import threading
from decimal import Decimal
from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowdeck.control.cancelling import settle
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.budget import BudgetGuard, execution_arn, usd
from flowdeck.stores.runs import RunStore

TABLE = "flowdeck-runs-test"  # as in conftest.py
RUN_ID = "20261121-193000-0badcafe"
ARN_PREFIX = "arn:aws:states:us-east-1:123456789012:stateMachine:flowdeck-"
EXECUTION_ARN = f"arn:aws:states:us-east-1:123456789012:execution:flowdeck-agent:{RUN_ID}"


class FakeStepFunctions:
    """Records StopExecution and SendTaskFailure calls."""

    def __init__(self) -> None:
        self.stops: list[dict[str, Any]] = []
        self.failures: list[dict[str, Any]] = []

    def stop_execution(self, **kwargs: Any) -> dict[str, Any]:
        self.stops.append(kwargs)
        return {"stopDate": "now"}

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        self.failures.append(kwargs)
        return {}


def message(
    token: str = "token-a",  # noqa: S107 - a task token, not a secret
    step: str = "think",
    max_cost_usd: str | None = "0.01",
) -> StepMessage:
    return StepMessage.model_validate(
        {
            "token": token,
            "run_id": RUN_ID,
            "workflow": "agent",
            "step": step,
            "spec": StepSpec(run="true").model_dump(by_alias=True),
            "max_cost_usd": max_cost_usd,
        }
    )


def seed_run(ddb: Any, status: str = "running", arn: str | None = EXECUTION_ARN) -> None:
    item = {"pk": {"S": RUN_ID}, "sk": {"S": "RUN"}, "status": {"S": status}, "workflow": {"S": "agent"}}
    if arn is not None:
        item["execution_arn"] = {"S": arn}
    ddb.put_item(TableName=TABLE, Item=item)


def seed_step(ddb: Any, step: str, status: str, **more: str) -> None:
    item = {"pk": {"S": RUN_ID}, "sk": {"S": f"STEP#{step}"}, "step": {"S": step}, "status": {"S": status}}
    ddb.put_item(TableName=TABLE, Item=item | {k: {"S": v} for k, v in more.items()})


def run_item(ddb: Any) -> dict[str, Any]:
    run, _, _ = RunStore(TABLE, ddb).get_run_items(RUN_ID)
    assert run is not None
    return run


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


@pytest.fixture
def guard(runs_ddb: Any, sfn: FakeStepFunctions) -> BudgetGuard:
    return BudgetGuard(TABLE, runs_ddb, sfn, ARN_PREFIX)


@pytest.mark.parametrize(("total", "limit"), [("0.009", "0.01"), ("0.01", "0.01"), ("99", None)])
def test_guard_at_or_under_the_limit_or_without_one_does_nothing(
    runs_ddb: Any, sfn: FakeStepFunctions, guard: BudgetGuard, total: str, limit: str | None
) -> None:
    seed_run(runs_ddb)
    stop = threading.Event()

    guard.after_usage(message(max_cost_usd=limit), Decimal(total), stop)

    assert not stop.is_set()
    assert sfn.stops == []
    assert run_item(runs_ddb)["status"] == "running"
    assert "cancel_reason" not in run_item(runs_ddb)
    assert guard.exceeded(message()) is None


def test_guard_past_the_limit_cancels_the_run_stops_the_execution_and_the_step(
    runs_ddb: Any, sfn: FakeStepFunctions, guard: BudgetGuard
) -> None:
    seed_run(runs_ddb)
    seed_step(runs_ddb, "think", "running")
    stop = threading.Event()

    guard.after_usage(message(), Decimal("0.0123"), stop)

    run = run_item(runs_ddb)
    # The cancel is under way: the run keeps its status while its step's process still runs.
    assert run["status"] == "running"
    assert run["cancel_requested_at"]
    assert (run["cancel_mode"], run["cancel_reason"]) == ("graceful", "BudgetExceeded")
    assert run["error"] == "BudgetExceeded"
    assert run["error_cause"] == "run cost $0.0123 passed max_cost_usd $0.01"
    assert run["cancelled_by"] == "budget-guard"
    assert "ended_at" not in run
    assert sfn.stops == [
        {
            "executionArn": EXECUTION_ARN,
            "error": "BudgetExceeded",
            "cause": "run cost $0.0123 passed max_cost_usd $0.01",
        }
    ]
    assert stop.is_set()
    # The worker learns why its step stopped, once.
    assert guard.exceeded(message()) == "run cost $0.0123 passed max_cost_usd $0.01"
    assert guard.exceeded(message()) is None
    # Once the step's process has ended, the run reads cancelled, ended then.
    runs = RunStore(TABLE, runs_ddb)
    assert settle(runs, RUN_ID) is False
    seed_step(runs_ddb, "think", "cancelled")
    assert settle(runs, RUN_ID) is True
    run = run_item(runs_ddb)
    assert (run["status"], run["error"]) == ("cancelled", "BudgetExceeded")
    assert run["ended_at"] >= run["cancel_requested_at"]


def test_guard_stops_a_waiting_run_whose_other_branch_is_still_spending(
    runs_ddb: Any, sfn: FakeStepFunctions, guard: BudgetGuard
) -> None:
    # One branch waits for an approval (the run reads waiting), the other still runs and spends.
    seed_run(runs_ddb, status="waiting")
    seed_step(runs_ddb, "approve", "waiting", wait_token="approval-token")
    seed_step(runs_ddb, "think", "running")
    stop = threading.Event()

    guard.after_usage(message(), Decimal("0.02"), stop)

    run = run_item(runs_ddb)
    assert (run["status"], run["cancel_reason"], run["cancelled_by"]) == (
        "waiting",
        "BudgetExceeded",
        "budget-guard",
    )
    assert stop.is_set()
    assert len(sfn.stops) == 1
    # The approval's wait ends with the budget's error, and its step is recorded cancelled.
    assert sfn.failures == [
        {
            "taskToken": "approval-token",
            "error": "BudgetExceeded",
            "cause": "run cost $0.02 passed max_cost_usd $0.01",
        }
    ]
    _, steps, _ = RunStore(TABLE, runs_ddb).get_run_items(RUN_ID)
    assert (steps["approve"]["status"], steps["approve"]["error"]) == ("cancelled", "BudgetExceeded")
    seed_step(runs_ddb, "think", "cancelled")
    assert settle(RunStore(TABLE, runs_ddb), RUN_ID) is True
    assert run_item(runs_ddb)["status"] == "cancelled"


def test_later_flushes_of_a_stopped_step_change_nothing(
    runs_ddb: Any, sfn: FakeStepFunctions, guard: BudgetGuard
) -> None:
    seed_run(runs_ddb)
    stop = threading.Event()
    guard.after_usage(message(), Decimal("0.02"), stop)
    requested_at = run_item(runs_ddb)["cancel_requested_at"]

    guard.after_usage(message(), Decimal("0.03"), stop)

    assert len(sfn.stops) == 1
    assert run_item(runs_ddb)["cancel_requested_at"] == requested_at
    assert run_item(runs_ddb)["error_cause"] == "run cost $0.02 passed max_cost_usd $0.01"


class AtomicDynamoDB:
    """One request at a time: DynamoDB applies a conditional update atomically; moto, across threads, not."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.lock = threading.Lock()

    def update_item(self, **kwargs: Any) -> Any:
        with self.lock:
            return self.client.update_item(**kwargs)

    def query(self, **kwargs: Any) -> Any:
        return self.client.query(**kwargs)


def test_two_racing_guards_cancel_the_run_once_and_both_steps_stop(runs_ddb: Any) -> None:
    seed_run(runs_ddb)
    fakes = [FakeStepFunctions(), FakeStepFunctions()]
    ddb = AtomicDynamoDB(runs_ddb)
    guards = [BudgetGuard(TABLE, ddb, fake, ARN_PREFIX) for fake in fakes]
    messages = [message(token="token-a", step="left"), message(token="token-b", step="right")]
    stops = [threading.Event(), threading.Event()]
    together = threading.Barrier(2)

    def flush(index: int) -> None:
        together.wait()
        guards[index].after_usage(messages[index], Decimal("0.05"), stops[index])

    threads = [threading.Thread(target=flush, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)

    # Exactly one conditional write won, so the execution is stopped exactly once.
    assert sum(len(fake.stops) for fake in fakes) == 1
    assert all(stop.is_set() for stop in stops)
    assert [g.exceeded(m) for g, m in zip(guards, messages, strict=True)] == [
        "run cost $0.05 passed max_cost_usd $0.01"
    ] * 2
    run = run_item(runs_ddb)
    assert (run["status"], run["cancelled_by"]) == ("running", "budget-guard")
    assert run["cancel_requested_at"]


def test_run_that_already_ended_keeps_its_record(
    runs_ddb: Any, sfn: FakeStepFunctions, guard: BudgetGuard
) -> None:
    seed_run(runs_ddb, status="failed")
    stop = threading.Event()

    guard.after_usage(message(), Decimal("1"), stop)

    run = run_item(runs_ddb)
    assert run["status"] == "failed"
    assert "cancel_reason" not in run
    assert sfn.stops == []
    assert stop.is_set()  # over budget all the same: the step stops


def test_execution_arn_is_derived_when_the_run_item_has_none(
    runs_ddb: Any, sfn: FakeStepFunctions, guard: BudgetGuard
) -> None:
    seed_run(runs_ddb, arn=None)

    guard.after_usage(message(), Decimal("0.5"), threading.Event())

    assert sfn.stops[0]["executionArn"] == EXECUTION_ARN
    assert execution_arn(ARN_PREFIX, "agent", RUN_ID) == EXECUTION_ARN


class FailingStepFunctions:
    def stop_execution(self, **kwargs: Any) -> None:
        raise ClientError({"Error": {"Code": "ExecutionDoesNotExist", "Message": "gone"}}, "StopExecution")


def test_execution_already_gone_still_stops_the_step(runs_ddb: Any) -> None:
    seed_run(runs_ddb)
    guard = BudgetGuard(TABLE, runs_ddb, FailingStepFunctions(), ARN_PREFIX)
    stop = threading.Event()

    guard.after_usage(message(), Decimal("0.5"), stop)

    assert stop.is_set()
    assert run_item(runs_ddb)["cancel_reason"] == "BudgetExceeded"
    assert settle(RunStore(TABLE, runs_ddb), RUN_ID) is True
    assert run_item(runs_ddb)["status"] == "cancelled"


@pytest.mark.parametrize(
    ("value", "text"), [("0.01", "0.01"), ("5.0", "5"), ("100", "100"), ("0.012345", "0.012345")]
)
def test_dollars_read_as_people_write_them(value: str, text: str) -> None:
    assert usd(Decimal(value)) == text
