"""Cancel on the local stack: graceful (SIGTERM, grace), force (SIGKILL at once), cleanup, and refusals."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, steps_by_id, wait

pytestmark = pytest.mark.e2e


def appears(path: Path, timeout: float = 60.0) -> None:
    """Wait for the step to write `path` (it is running, its SIGTERM handler installed)."""
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path.name} never appeared"
        time.sleep(0.1)


def settled(api: httpx.Client, run_id: str, step: str, timeout: float = 60.0) -> dict[str, Any]:
    """The run once the worker has recorded how `step` ended and the run has ended after it."""
    deadline = time.monotonic() + timeout
    while True:
        run = dict(api.get(f"/runs/{run_id}").json())
        if (steps_by_id(run)[step].get("error") and run["ended_at"]) or time.monotonic() > deadline:
            return run
        time.sleep(0.2)


def cleanup_done(api: httpx.Client, run_id: str, timeout: float = 120.0) -> dict[str, Any]:
    """The run once it reads cancelled; it must not while its cleanup is pending or running."""
    deadline = time.monotonic() + timeout
    while True:
        run = dict(api.get(f"/runs/{run_id}").json())
        if run["status"] == "cancelled":
            assert run.get("cleanup_status") in {"succeeded", "failed"}, (
                f"cancelled before its cleanup: {run}"
            )
            return run
        assert time.monotonic() < deadline, f"cleanup never finished: {run}"
        time.sleep(0.1)


def log_texts(api: httpx.Client, run_id: str, step: str) -> list[str]:
    page = api.get(f"/runs/{run_id}/logs", params={"step": step}).json()
    return [line["text"] for line in page["lines"]]


def until_cancelled(api: httpx.Client, run_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every read of the run, as fast as the API answers, up to the first that says cancelled."""
    deadline = time.monotonic() + timeout
    reads = []
    while True:
        reads.append(dict(api.get(f"/runs/{run_id}").json()))
        if reads[-1]["status"] == "cancelled":
            return reads
        assert time.monotonic() < deadline, f"never cancelled: {reads[-1]}"


def test_graceful_cancel_sigterms_the_step_and_keeps_its_logs(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "cancel-trap", folder=str(tmp_path), linger=1.5)
    appears(tmp_path / "ready")

    answer = api.post(f"/runs/{run_id}/cancel", json={"mode": "graceful", "reason": "wrong branch"})

    assert answer.status_code == 202, answer.text
    body = answer.json()
    # The step's process still runs: the run keeps its status, and shows the cancel under way.
    assert (body["run_id"], body["status"], body["mode"], body["reason"]) == (
        run_id,
        "running",
        "graceful",
        "wrong branch",
    )
    reads = until_cancelled(api, run_id)
    # The step trapped SIGTERM and took 1.5 s to exit: the run said cancelled only after it had.
    assert (tmp_path / "exited").exists()
    under_way = reads[:-1]
    assert under_way, "the run read cancelled while its step's process still ran"
    for read in under_way:
        assert read["status"] == "running"
        assert (read["cancel_requested_at"], read["cancel_mode"]) == (body["cancel_requested_at"], "graceful")
        assert read["ended_at"] is None
    trap = steps_by_id(under_way[0])["trap"]
    assert (trap["status"], trap["cancel_mode"], trap["cancelled_by"]) == (
        "running",
        "graceful",
        "e2e@example.com",
    )
    run = settled(api, run_id, "trap")
    steps = steps_by_id(run)
    assert (run["status"], run["cancel_mode"]) == ("cancelled", "graceful")
    assert run["cancel_reason"] == "wrong branch"
    assert run["cancelled_by"] == "e2e@example.com"
    assert run["ended_at"] >= steps["trap"]["ended_at"]
    # The step's SIGTERM handler ran (graceful), and the step is recorded cancelled with the reason.
    assert (tmp_path / "sigterm").exists()
    assert (steps["trap"]["status"], steps["trap"]["error"]) == ("cancelled", "Cancelled")
    assert steps["trap"]["cause"] == "wrong branch"
    assert steps["before"]["status"] == "succeeded"
    assert steps["after"]["status"] == "cancelled"
    # What it printed before and while being stopped is kept.
    assert log_texts(api, run_id, "trap") == ["started, waiting", "got SIGTERM, cleaning up"]
    execution = stack.client("stepfunctions").describe_execution(executionArn=run["execution_arn"])
    deadline = time.monotonic() + 30
    while execution["status"] == "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
        execution = stack.client("stepfunctions").describe_execution(executionArn=run["execution_arn"])
    assert execution["status"] in {"ABORTED", "FAILED"}
    assert not (tmp_path / "after").exists()
    assert wait(api, run_id)["status"] == "cancelled"

    again = api.post(f"/runs/{run_id}/cancel", json={})
    assert again.status_code == 409
    assert again.json() == {"error": "Conflict", "message": f"run {run_id} is already cancelled"}


def test_a_second_cancel_is_refused_and_force_escalates_a_graceful_one(
    api: httpx.Client, tmp_path: Path
) -> None:
    # The trap lingers past what the test waits: only the escalation to force ends it.
    run_id = start(api, "cancel-trap", folder=str(tmp_path), linger=15)
    appears(tmp_path / "ready")
    first = api.post(f"/runs/{run_id}/cancel", json={"reason": "first press"})
    assert first.status_code == 202, first.text
    appears(tmp_path / "sigterm", timeout=10)

    again = api.post(f"/runs/{run_id}/cancel", json={"mode": "graceful"})

    assert again.status_code == 409
    assert again.json() == {
        "error": "CancelUnderWay",
        "message": f"run {run_id} is already being cancelled (graceful, asked by e2e@example.com at "
        f"{first.json()['cancel_requested_at']}); ask with mode force to kill its steps at once",
    }
    assert api.get(f"/runs/{run_id}").json()["status"] == "running"

    forced = api.post(f"/runs/{run_id}/cancel", json={"mode": "force"})

    assert forced.status_code == 202, forced.text
    assert (forced.json()["mode"], forced.json()["escalated"]) == ("force", True)
    run = until_cancelled(api, run_id, timeout=10)[-1]
    assert (run["cancel_mode"], run["cancel_escalated_by"]) == ("force", "e2e@example.com")
    step = steps_by_id(settled(api, run_id, "trap"))["trap"]
    # Killed during its grace period: the handler never finished.
    assert step["exit_code"] == -9
    assert not (tmp_path / "exited").exists()


def test_force_cancel_kills_at_once(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "cancel-trap", folder=str(tmp_path))
    appears(tmp_path / "ready")

    answer = api.post(f"/runs/{run_id}/cancel", json={"mode": "force"})

    assert answer.status_code == 202, answer.text
    assert answer.json()["reason"] == "cancelled by e2e@example.com"
    run = settled(api, run_id, "trap")
    step = steps_by_id(run)["trap"]
    assert (run["status"], run["cancel_mode"]) == ("cancelled", "force")
    assert (step["status"], step["error"]) == ("cancelled", "Cancelled")
    # SIGKILL at once: the step's SIGTERM handler never ran.
    assert not (tmp_path / "sigterm").exists()
    assert step["exit_code"] == -9
    assert log_texts(api, run_id, "trap") == ["started, waiting"]


def test_cleanup_runs_each_succeeded_steps_cleanup_newest_first_and_shows_failures(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "cancel-cleanup", folder=str(tmp_path))
    appears(tmp_path / "ready")

    answer = api.post(f"/runs/{run_id}/cancel", json={"mode": "cleanup", "reason": "revert"})

    assert answer.status_code == 202, answer.text
    # A worker may have claimed the cleanup already (it waits for the steps to end, then runs it).
    assert answer.json()["status"] == "running"
    assert answer.json()["cleanup_status"] in {"pending", "running"}
    run = cleanup_done(api, run_id)
    # apply finished last, so it is undone first; its cleanup failed and create's still ran.
    assert (tmp_path / "order").read_text().split() == ["apply", "create"]
    assert run["cleanup_status"] == "failed"
    by_step = {entry["step"]: entry for entry in run["cleanup"]}
    assert [entry["step"] for entry in run["cleanup"]] == ["apply", "create"]
    assert (by_step["apply"]["status"], by_step["apply"]["exit_code"]) == ("failed", 3)
    assert by_step["apply"]["cause"] == "exit code 3: destroy failed: state locked"
    assert (by_step["create"]["status"], by_step["create"]["exit_code"]) == ("succeeded", 0)
    # hold never succeeded, so its cleanup did not run.
    assert "hold" not in by_step
    assert steps_by_id(run)["hold"]["status"] == "cancelled"
    # stdout and stderr are separate pipes: their relative order is not kept.
    apply_log = sorted(log_texts(api, run_id, "cleanup:apply"))
    assert apply_log == ["destroy failed: state locked", "undoing apply"]
    assert log_texts(api, run_id, "cleanup:create") == ["undoing create"]

    shown = CliRunner().invoke(app, ["--api", stack.api_url, "show", run_id])
    assert shown.exit_code == 0, shown.output
    assert "Cleanup: failed" in shown.output
    assert "exit code 3: destroy failed: state locked" in shown.output


def test_cli_cancel_with_cleanup_reports_a_failed_cleanup(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "cancel-cleanup", folder=str(tmp_path))
    appears(tmp_path / "ready")

    result = CliRunner().invoke(
        app, ["--api", stack.api_url, "cancel", run_id, "--cleanup", "--reason", "revert it"]
    )

    assert result.exit_code == 1, result.output
    assert f"Cancelling run {run_id} (cleanup): revert it" in result.output
    assert "Cleanup: failed" in result.output
    assert "apply failed" in result.output
    assert "create succeeded" in result.output


def test_cancelling_a_finished_run_is_a_conflict(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "cancel-trap", folder=str(tmp_path), seconds=0)
    assert wait(api, run_id)["status"] == "succeeded"

    answer = api.post(f"/runs/{run_id}/cancel", json={"mode": "force"})

    assert answer.status_code == 409
    assert answer.json() == {"error": "Conflict", "message": f"run {run_id} is already succeeded"}
    assert api.get(f"/runs/{run_id}").json()["status"] == "succeeded"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"mode": "gently"}, "mode: Input should be 'graceful', 'force' or 'cleanup'"),
        ({"mode": "force", "why": "x"}, "why: unknown field"),
        ({"reason": "x" * 501}, "reason: String should have at most 500 characters"),
    ],
)
def test_a_bad_cancel_request_is_refused(api: httpx.Client, body: dict[str, Any], message: str) -> None:
    answer = api.post("/runs/20261121-000000-00000000/cancel", json=body)

    assert answer.status_code == 422
    assert answer.json() == {"error": "ValidationError", "message": message}


def test_cancelling_an_unknown_run_is_not_found(api: httpx.Client) -> None:
    answer = api.post("/runs/20261121-000000-00000000/cancel", json={})

    assert answer.status_code == 404
    assert answer.json()["error"] == "RunNotFound"


def test_a_worker_killed_during_a_cleanup_leaves_it_failed_worker_lost(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "cancel-cleanup-lost", folder=str(tmp_path))
    appears(tmp_path / "ready")
    assert api.post(f"/runs/{run_id}/cancel", json={"mode": "cleanup"}).status_code == 202
    appears(tmp_path / "cleaning", timeout=30)
    worker_pid, cleanup_pid = (int(pid) for pid in (tmp_path / "cleaning").read_text().split())
    assert worker_pid in {process.pid for process in stack.workers.values()}, "the cleanup runs in a worker"

    os.kill(worker_pid, signal.SIGKILL)
    try:
        run = cleanup_done(api, run_id, timeout=60)
    finally:
        # The killed worker's cleanup is in its own process group: end it with the test.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(cleanup_pid, signal.SIGKILL)

    assert (run["status"], run["cleanup_status"]) == ("cancelled", "failed")
    assert run["cleanup_error"].startswith("WorkerLost: the worker running the cleanup was lost")
    assert [(e["step"], e["status"], e["error"]) for e in run["cleanup"]] == [
        ("create", "failed", "WorkerLost")
    ]
