"""Pause on failure end to end: a failed step waits (no compute), then Retry step or Skip step."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, steps_by_id, wait

pytestmark = pytest.mark.e2e


def wait_for_step(
    api: httpx.Client,
    run_id: str,
    step: str,
    status: str,
    timeout: float = 60.0,
    run_status: str | None = None,
) -> dict[str, Any]:
    """Poll until `step` of the run has `status` (and the run `run_status`); the run as read then.

    A pause records the step waiting, then the run: both are read together only once both landed.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/runs/{run_id}").json()
        if (
            run.get("steps")
            and steps_by_id(run)[step]["status"] == status
            and run_status in (None, run.get("status"))
        ):
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"step {step} of {run_id} never became {status}: {api.get(f'/runs/{run_id}').text}")


def decide(api: httpx.Client, run_id: str, step: str, decision: str, **body: Any) -> httpx.Response:
    return api.post(f"/runs/{run_id}/steps/{step}/{decision}", json=body or None)


def test_failed_apply_pauses_then_retry_step_runs_it_again_and_the_run_succeeds(
    api: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    run_id = start(api, "pause-deploy", folder=str(tmp_path))

    paused = wait_for_step(api, run_id, "apply", "waiting", run_status="waiting")

    apply = steps_by_id(paused)["apply"]
    assert apply["error"] == "StepFailed"
    assert apply["cause"] == "exit code 1: Error acquiring the state lock"
    assert apply["allow_skip"] is False
    assert apply["waiting_since"] < apply["wait_deadline"]
    assert [(a["attempt"], a["status"]) for a in apply["attempts"]] == [(1, "failed")]
    assert steps_by_id(paused)["health"]["status"] == "pending"
    assert "wait_token" not in apply

    refused = decide(api, run_id, "apply", "skip")
    assert refused.status_code == 409
    assert refused.json()["error"] == "SkipNotAllowed"

    retried = decide(api, run_id, "apply", "retry", comment="lock released")
    assert retried.status_code == 202, retried.text
    assert retried.json() | {"at": None} == {
        "run_id": run_id,
        "step": "apply",
        "decision": "retry",
        "status": "pending",
        "by": "e2e@example.com",
        "at": None,
        "next_attempt": 2,
    }

    run = wait(api, run_id)

    steps = steps_by_id(run)
    assert run["status"] == "succeeded"
    assert [s["status"] for s in run["steps"]] == ["succeeded"] * 4
    apply = steps["apply"]
    assert apply["attempt"] == 2
    assert [(a["attempt"], a["status"]) for a in apply["attempts"]] == [(1, "failed"), (2, "succeeded")]
    assert apply["attempts"][0]["error"] == "StepFailed"
    assert [(d["decision"], d["by"], d["comment"]) for d in apply["decisions"]] == [
        ("retry", "e2e@example.com", "lock released")
    ]
    assert apply["outputs"]["endpoint"] == "http://127.0.0.1/health"
    assert (tmp_path / "apply-failed-once").read_text() == "1"
    # Earlier outputs were kept: notify read plan's after the pause.
    assert steps["notify"]["outputs"]["message"] == f"Deployed (1 to add) in run {run_id}"
    assert steps["health"]["started_at"] >= apply["attempts"][1]["ended_at"]

    shown = CliRunner().invoke(app, ["--api", stack.api_url, "show", run_id], env={"COLUMNS": "200"})
    assert shown.exit_code == 0, shown.output
    lines = shown.output.splitlines()
    duration = datetime.fromisoformat(run["ended_at"]) - datetime.fromisoformat(run["started_at"])
    minutes, seconds = divmod(round(duration.total_seconds()), 60)
    assert f"Duration: {minutes}m {seconds:02d}s" in lines[0]
    apply_line = next(line for line in lines if " apply " in line)
    assert "(attempt 2)" in apply_line
    assert "retried by e2e@example.com" in apply_line


def test_retry_on_a_step_that_is_not_waiting_is_refused(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "pause-deploy", folder=str(tmp_path))
    wait_for_step(api, run_id, "apply", "waiting")
    assert decide(api, run_id, "apply", "retry").status_code == 202

    run = wait(api, run_id)

    assert run["status"] == "succeeded"
    again = decide(api, run_id, "apply", "retry")
    assert again.status_code == 409
    assert again.json()["error"] == "StepNotWaiting"
    never_paused = decide(api, run_id, "plan", "retry")
    assert never_paused.status_code == 409
    assert never_paused.json()["error"] == "StepNotWaiting"
    assert decide(api, run_id, "nope", "retry").json()["error"] == "StepNotFound"
    assert decide(api, "20990101-000000-00000000", "apply", "skip").json()["error"] == "RunNotFound"
    assert decide(api, run_id, "apply", "retry", extra=1).status_code == 422


def test_two_decisions_at_once_exactly_one_wins(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "pause-deploy", folder=str(tmp_path))
    wait_for_step(api, run_id, "apply", "waiting")

    with ThreadPoolExecutor(2) as pool:
        answers = list(pool.map(lambda _: decide(api, run_id, "apply", "retry"), range(2)))

    assert sorted(a.status_code for a in answers) == [202, 409]
    run = wait(api, run_id)
    assert run["status"] == "succeeded"
    assert len(steps_by_id(run)["apply"]["decisions"]) == 1
    assert [a["attempt"] for a in steps_by_id(run)["apply"]["attempts"]] == [1, 2]


def test_skip_step_records_it_skipped_and_the_run_goes_on(api: httpx.Client, stack: LocalStack) -> None:
    run_id = start(api, "pause-skip")
    paused = wait_for_step(api, run_id, "warm-cache", "waiting")
    assert steps_by_id(paused)["warm-cache"]["allow_skip"] is True

    skipped = CliRunner().invoke(
        app,
        ["--api", stack.api_url, "skip", run_id, "warm-cache", "--comment", "cache is optional", "--json"],
        env={"FLOWDECK_USER": "e2e@example.com"},
    )
    assert skipped.exit_code == 0, skipped.output
    assert json.loads(skipped.output)["status"] == "skipped"

    run = wait(api, run_id)

    steps = steps_by_id(run)
    assert run["status"] == "succeeded"
    assert steps["warm-cache"]["status"] == "skipped"
    assert steps["warm-cache"]["error"] == "StepFailed"
    assert [(d["decision"], d["by"]) for d in steps["warm-cache"]["decisions"]] == [
        ("skip", "e2e@example.com")
    ]
    assert steps["build"]["status"] == "succeeded"
    again = CliRunner().invoke(app, ["--api", stack.api_url, "skip", run_id, "warm-cache"])
    assert again.exit_code == 1
    assert "StepNotWaiting" in again.output


def test_nobody_deciding_before_the_pause_deadline_fails_the_run(api: httpx.Client) -> None:
    run = wait(api, start(api, "pause-deadline"))

    steps = steps_by_id(run)
    assert run["status"] == "failed"
    assert run["error"] == "PauseTimedOut"
    assert steps["migrate"]["status"] == "failed"
    assert steps["migrate"]["error"] == "PauseTimedOut"
    assert (steps["never"]["status"], steps["never"]["not_run"]) == ("skipped", "the run failed at migrate")


def test_step_paused_in_a_parallel_branch_after_its_retries_is_retried(
    api: httpx.Client, tmp_path: Path
) -> None:
    marker = tmp_path / "count"
    run_id = start(api, "pause-parallel", marker=str(marker))

    paused = wait_for_step(api, run_id, "left", "waiting")
    assert [(a["attempt"], a["status"]) for a in steps_by_id(paused)["left"]["attempts"]] == [
        (1, "failed"),
        (2, "failed"),
    ]
    # The sibling branch ended while left waits: the run stays waiting.
    assert wait_for_step(api, run_id, "right", "succeeded", run_status="waiting")
    assert decide(api, run_id, "left", "retry").status_code == 202

    run = wait(api, run_id)

    steps = steps_by_id(run)
    assert run["status"] == "succeeded"
    assert [(a["attempt"], a["status"]) for a in steps["left"]["attempts"]] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert steps["join"]["status"] == "succeeded"
    assert marker.read_text() == "3"


def test_cancelling_a_paused_run_ends_its_wait(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "pause-deploy", folder=str(tmp_path))
    wait_for_step(api, run_id, "apply", "waiting")

    cancelled = api.post(f"/runs/{run_id}/cancel", json={"reason": "not today"})
    assert cancelled.status_code == 202, cancelled.text

    run = wait(api, run_id)
    assert run["status"] == "cancelled"
    assert steps_by_id(run)["apply"]["status"] == "cancelled"
    assert decide(api, run_id, "apply", "retry").json()["error"] == "StepNotWaiting"
