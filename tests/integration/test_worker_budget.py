"""StepRunner with the BudgetGuard: real step processes, the runs table on moto, a fake Step Functions."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.control.cancelling import settle
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.budget import BudgetGuard
from flowdeck.runner.step_runner import StepRunner
from flowdeck.stores.runs import RunStore
from tests.integration.test_worker import FakeStepFunctions

TABLE = "flowdeck-runs-test"  # as in conftest.py
RUN_ID = "r-budget"
TOKEN = "task-token-budget"
ARN_PREFIX = "arn:aws:states:us-east-1:123456789012:stateMachine:flowdeck-"
EXECUTION_ARN = f"arn:aws:states:us-east-1:123456789012:execution:flowdeck-agent:{RUN_ID}"
# claude-opus-4 at list price: 1000 output tokens = $0.075.
EXPENSIVE = json.dumps({"model": "claude-opus-4", "input_tokens": 0, "output_tokens": 1000})


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


@pytest.fixture
def store(runs_ddb: Any) -> RunStore:
    runs_ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": RUN_ID},
            "sk": {"S": "RUN"},
            "status": {"S": "running"},
            "workflow": {"S": "agent"},
            "execution_arn": {"S": EXECUTION_ARN},
        },
    )
    return RunStore(TABLE, runs_ddb)


@pytest.fixture
def runner(store: RunStore, runs_ddb: Any, sfn: FakeStepFunctions, tmp_path: Path) -> Iterator[StepRunner]:
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    budget = BudgetGuard(TABLE, runs_ddb, sfn, ARN_PREFIX)
    step_runner = StepRunner(settings, store, sfn, budget=budget, calculator=None)
    yield step_runner
    step_runner.io.shutdown(wait=True)


def message(script: str, max_cost_usd: str | None = "0.01") -> StepMessage:
    return StepMessage(
        token=TOKEN,
        run_id=RUN_ID,
        workflow="agent",
        step="think",
        max_cost_usd=max_cost_usd,
        spec=StepSpec(command=[sys.executable, "-c", script], timeout=60),
    )


def spending(marker: Path, seconds: int = 30) -> str:
    """A step that spends past $0.01 at once, then works on until SIGTERM, which it records."""
    return (
        "import os, signal, sys, time\n"
        f"def stopped(*_):\n    open({str(marker)!r}, 'w').write('TERM'); sys.exit(143)\n"
        "signal.signal(signal.SIGTERM, stopped)\n"
        f"open(os.environ['FLOWDECK_USAGE'], 'a').write({EXPENSIVE!r} + '\\n')\n"
        f"time.sleep({seconds})\n"
    )


def test_step_past_the_budget_is_stopped_gracefully_and_recorded_cancelled(runner, store, sfn, tmp_path):
    marker = tmp_path / "sigterm"

    result = runner.handle(message(spending(marker)), lambda stream, text: None)

    assert result is not None
    assert (result.status, result.error) == ("cancelled", "BudgetExceeded")
    assert marker.read_text() == "TERM"
    assert result.process_seconds < 15
    run, steps, _ = store.get_run_items(RUN_ID)
    assert run is not None
    # The cancel was asked for while the process ran; its step has ended, so it now settles.
    assert (run["cancel_requested_at"] is not None, run["cancel_reason"], run["cancelled_by"]) == (
        True,
        "BudgetExceeded",
        "budget-guard",
    )
    assert settle(store, RUN_ID) is True
    run, steps, _ = store.get_run_items(RUN_ID)
    assert run is not None and run["status"] == "cancelled"
    assert steps["think"]["status"] == "cancelled"
    assert steps["think"]["error"] == "BudgetExceeded"
    kinds = [kind for kind, _ in sfn.answers()]
    assert kinds == ["stop", "failure"], "never a success; the execution stopped once"
    stop, failure = (kwargs for _, kwargs in sfn.answers())
    assert stop["executionArn"] == EXECUTION_ARN
    assert stop["error"] == failure["error"] == "BudgetExceeded"
    assert failure["taskToken"] == TOKEN
    assert failure["cause"] == run["error_cause"]


def test_step_whose_last_usage_passes_the_budget_does_not_let_the_run_move_on(runner, store, sfn):
    # It ends before any flush: only the final usage, added at the finish, passes the budget.
    script = f"import os; open(os.environ['FLOWDECK_USAGE'], 'a').write({EXPENSIVE!r} + '\\n')"

    result = runner.handle(message(script), lambda stream, text: None)

    assert result is not None and result.status == "succeeded"
    run, _, _ = store.get_run_items(RUN_ID)
    assert run is not None and run["cancel_reason"] == "BudgetExceeded"
    assert settle(store, RUN_ID) is True
    run, _, _ = store.get_run_items(RUN_ID)
    assert run is not None and run["status"] == "cancelled"
    assert [kind for kind, _ in sfn.answers()] == ["stop", "failure"]
    assert sfn.answers()[1][1]["error"] == "BudgetExceeded"


def test_step_under_its_budget_answers_success(runner, store, sfn):
    script = f"import os; open(os.environ['FLOWDECK_USAGE'], 'a').write({EXPENSIVE!r} + '\\n')"

    result = runner.handle(message(script, max_cost_usd="5"), lambda stream, text: None)

    assert result is not None and result.status == "succeeded"
    assert [kind for kind, _ in sfn.answers()] == ["success"]
    run, _, _ = store.get_run_items(RUN_ID)
    assert run is not None and run["status"] == "running"
