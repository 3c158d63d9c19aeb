"""The budget guard on the local stack: a run past its max_cost_usd is cancelled, gracefully."""

from __future__ import annotations

import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.constants import ENV_RUNS_TABLE
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, steps_by_id, wait

pytestmark = pytest.mark.e2e


def step_ended(api: httpx.Client, run_id: str, step: str, timeout: float = 15.0) -> dict[str, Any]:
    """The run once `step` is no longer running (the run record is final before the step's own is)."""
    deadline = time.monotonic() + timeout
    while True:
        run = dict(api.get(f"/runs/{run_id}").json())
        if steps_by_id(run)[step]["status"] != "running" or time.monotonic() > deadline:
            return run
        time.sleep(0.1)


def test_budget_guard_cancels_a_run_past_its_max_cost(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "budget", folder=str(tmp_path))

    # The step alone would spend for 60 s; the guard ends it a few seconds after the budget is passed.
    run = wait(api, run_id, timeout=40)
    run = step_ended(api, run_id, "spend")

    steps = steps_by_id(run)
    assert run["status"] == "cancelled", run
    assert run["cancel_reason"] == "BudgetExceeded"
    assert run["error"] == "BudgetExceeded"
    assert run["error_cause"].startswith("run cost $")
    assert run["error_cause"].endswith(" passed max_cost_usd $0.01")
    assert float(run["cost_usd"]) > 0.01
    assert steps["spend"]["status"] == "cancelled"
    assert steps["spend"]["error"] == "BudgetExceeded"
    # Graceful: the step's process got SIGTERM (its handler wrote the marker) before any SIGKILL.
    assert (tmp_path / "sigterm").exists()
    passed = float((tmp_path / "passed").read_text())
    ended = datetime.fromisoformat(run["ended_at"]).timestamp()
    assert 0 <= ended - passed < 6, f"cancelled {ended - passed:.1f}s after the budget was passed"
    # No later step ran (a cancelled run shows what never ran as cancelled, as any cancel does), and
    # the state machine did not overwrite the record.
    assert (steps["after"]["status"], steps["after"]["started_at"]) == ("cancelled", None)
    # The run said cancelled only once the step's process had ended.
    assert run["ended_at"] >= steps["spend"]["ended_at"]
    assert not (tmp_path / "after").exists()
    execution = stack.client("stepfunctions").describe_execution(executionArn=run["execution_arn"])
    assert execution["status"] in {"ABORTED", "FAILED"}
    assert wait(api, run_id)["status"] == "cancelled"


def test_sibling_steps_stop_and_never_flip_the_cancelled_run_back(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "budget-parallel", folder=str(tmp_path))

    wait(api, run_id, timeout=40)
    run = step_ended(api, run_id, "sibling", timeout=20)

    steps = steps_by_id(run)
    assert (run["status"], run["cancel_reason"]) == ("cancelled", "BudgetExceeded")
    assert steps["spend"]["error"] == "BudgetExceeded"
    # The sibling learnt it at its next heartbeat (the execution is stopped) and stopped gracefully.
    assert steps["sibling"]["status"] == "cancelled"
    assert (tmp_path / "sibling-sigterm").exists()
    assert wait(api, run_id)["status"] == "cancelled"


@pytest.mark.parametrize(("exit_code", "recorder"), [(0, "RecordRunSucceeded"), (3, "RecordRunFailed")])
def test_state_machine_keeps_a_run_cancelled_while_its_step_ran(
    stack: LocalStack, api: httpx.Client, exit_code: int, recorder: str
) -> None:
    run_id = start(api, "ends-late", exit_code=exit_code)
    deadline = time.monotonic() + 20
    while steps_by_id(api.get(f"/runs/{run_id}").json())["linger"]["status"] != "running":
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.1)

    # A cancel request lands just as the step ends on its own (its worker never saw it: no mode yet).
    stack.client("dynamodb").update_item(
        TableName=stack.env[ENV_RUNS_TABLE],
        Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}},
        UpdateExpression="SET cancel_requested_at = :now, cancel_reason = :reason",
        ExpressionAttributeValues={
            ":now": {"S": "2026-11-21T10:00:00+00:00"},
            ":reason": {"S": "BudgetExceeded"},
        },
    )
    run = step_ended(api, run_id, "linger")
    sfn = stack.client("stepfunctions")
    deadline = time.monotonic() + 20
    while (execution := sfn.describe_execution(executionArn=run["execution_arn"]))["status"] == "RUNNING":
        assert time.monotonic() < deadline, "the execution never ended"
        time.sleep(0.1)

    # The final recorder's condition failed: the execution ends at RunNotRunning, the record is kept.
    assert (execution["status"], execution.get("error")) == ("FAILED", "RunAlreadyEnded")
    events = sfn.get_execution_history(executionArn=run["execution_arn"])["events"]
    entered = [e["stateEnteredEventDetails"]["name"] for e in events if "stateEnteredEventDetails" in e]
    assert entered[-2:] == [recorder, "RunNotRunning"]
    # The cancel records the end itself, once the step's process has ended.
    run = wait(api, run_id)
    assert (run["status"], run["cancel_reason"]) == ("cancelled", "BudgetExceeded")
    assert run["ended_at"] >= steps_by_id(run)["linger"]["ended_at"]
