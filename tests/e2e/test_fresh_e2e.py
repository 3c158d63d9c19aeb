"""Fresh mode on the local stack: the same ASL's RunTask starts one new runner process per step."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, step_pid, steps_by_id, wait
from tests.e2e.test_cancel_e2e import appears, cleanup_done, log_texts, settled
from tests.e2e.test_pause_e2e import decide, wait_for_step

pytestmark = pytest.mark.e2e

# 60 s (Fargate's minimum) of 0.25 vCPU and 0.5 GB at the packaged card's us-east-1 x86_64 prices.
ONE_MINUTE_OF_THE_SMALLEST_TASK = "0.000206"


def test_each_fresh_step_runs_in_a_task_of_its_own_beside_a_pool_step(
    stack: LocalStack, api: httpx.Client
) -> None:
    run = wait(api, start(api, "fresh-mix"))

    assert run["status"] == "succeeded", run
    steps = steps_by_id(run)
    fresh = [steps[s] for s in ("one", "two", "three")]
    parents = [step["outputs"]["parent"] for step in fresh]
    workers = {process.pid for process in stack.workers.values()}
    # Each fresh step's process was started by a runner of its own, none of them a pool worker.
    assert len(set(parents)) == 3
    assert not set(parents) & workers
    assert steps["pooled"]["outputs"]["parent"] in workers
    task_arns = [step["attempts"][0]["task_arn"] for step in fresh]
    assert len(set(task_arns)) == 3
    assert all(arn.startswith("arn:aws:ecs:us-east-1:123456789012:task/flowdeck-fresh/") for arn in task_arns)
    assert "task_arn" not in steps["pooled"]["attempts"][0]
    assert [step["usage"]["compute"]["mode"] for step in fresh] == ["fresh"] * 3
    assert steps["pooled"]["usage"]["compute"]["mode"] == "pool"
    assert (steps["two"]["usage"]["compute"]["vcpu"], steps["two"]["usage"]["compute"]["memory_gb"]) == (
        0.5,
        1,
    )
    # A task is billed from its start, one minute at least: a step of a few seconds costs the minute.
    assert steps["one"]["cost_usd"] == steps["three"]["cost_usd"] == ONE_MINUTE_OF_THE_SMALLEST_TASK
    assert steps["pooled"]["cost_usd"] < ONE_MINUTE_OF_THE_SMALLEST_TASK
    # The tasks were started in the run's group, and each stopped once its step had answered.
    assert stopped_tasks(stack, task_arns) == {(f"flowdeck:{run['run_id']}", "STOPPED")}


def stopped_tasks(stack: LocalStack, arns: list[str], timeout: float = 10.0) -> set[tuple[str, str]]:
    """(group, last status) of the tasks once none runs (their runners exit right after answering)."""
    ecs = stack.client("ecs")
    deadline = time.monotonic() + timeout
    while True:
        tasks = ecs.describe_tasks(cluster="flowdeck-fresh", tasks=arns)["tasks"]
        if all(t["lastStatus"] == "STOPPED" for t in tasks) or time.monotonic() > deadline:
            return {(t["group"], t["lastStatus"]) for t in tasks}
        time.sleep(0.2)


def started_trap(api: httpx.Client, folder: Path, **inputs: Any) -> str:
    folder.mkdir()
    return start(api, "fresh-cancel", folder=str(folder), **inputs)


def test_a_fresh_step_is_cancelled_gracefully_with_force_and_with_cleanup(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    # Three runs at once (one per mode), so their cold starts overlap.
    graceful = started_trap(api, tmp_path / "graceful", linger=1.0)
    force = started_trap(api, tmp_path / "force")
    cleanup = started_trap(api, tmp_path / "cleanup")
    for mode in ("graceful", "force", "cleanup"):
        appears(tmp_path / mode / "ready")

    for run_id, mode in ((graceful, "graceful"), (force, "force"), (cleanup, "cleanup")):
        answer = api.post(f"/runs/{run_id}/cancel", json={"mode": mode, "reason": f"stop ({mode})"})
        assert answer.status_code == 202, answer.text

    # Graceful: SIGTERM, the step's handler finished within its grace period; its logs are kept.
    run = settled(api, graceful, "trap")
    trap = steps_by_id(run)["trap"]
    assert (run["status"], trap["status"], trap["error"], trap["cause"]) == (
        "cancelled",
        "cancelled",
        "Cancelled",
        "stop (graceful)",
    )
    assert (tmp_path / "graceful" / "exited").exists()
    assert trap["exit_code"] == 143
    assert log_texts(api, graceful, "trap") == ["started, waiting", "got SIGTERM, cleaning up"]
    assert trap["attempts"][0]["task_arn"]

    # Force: SIGKILL at once, the handler never ran.
    trap = steps_by_id(settled(api, force, "trap"))["trap"]
    assert (trap["status"], trap["exit_code"]) == ("cancelled", -9)
    assert not (tmp_path / "force" / "sigterm").exists()

    # Cleanup: the step stopped gracefully, then the succeeded step's cleanup ran.
    run = cleanup_done(api, cleanup)
    assert run["cleanup_status"] == "succeeded"
    assert (tmp_path / "cleanup" / "order").read_text().split() == ["create"]
    assert (tmp_path / "cleanup" / "sigterm").exists()

    # Every task of the three runs has stopped: no runner process is left.
    runs = (graceful, force, cleanup)
    arns = [a["task_arn"] for r in runs for s in api.get(f"/runs/{r}").json()["steps"] for a in s["attempts"]]
    assert len(arns) == 6
    assert stopped_tasks(stack, arns) == {(f"flowdeck:{r}", "STOPPED") for r in runs}


def test_a_fresh_step_paused_on_failure_is_retried_in_a_new_task(api: httpx.Client, tmp_path: Path) -> None:
    run_id = start(api, "fresh-pause", folder=str(tmp_path))

    paused = steps_by_id(wait_for_step(api, run_id, "flaky", "waiting", run_status="waiting"))["flaky"]
    assert (paused["error"], paused["cause"]) == ("StepFailed", "exit code 1: first attempt fails")
    retried = decide(api, run_id, "flaky", "retry", comment="try again")
    assert retried.status_code == 202, retried.text
    assert retried.json()["next_attempt"] == 2

    run = wait(api, run_id)

    assert run["status"] == "succeeded", run
    flaky = steps_by_id(run)["flaky"]
    assert [(a["attempt"], a["status"]) for a in flaky["attempts"]] == [(1, "failed"), (2, "succeeded")]
    first, second = (a["task_arn"] for a in flaky["attempts"])
    assert first != second
    assert log_texts(api, run_id, "flaky")[-1] == "second attempt works"
    assert steps_by_id(run)["after"]["status"] == "succeeded"


def tasks_of_run(stack: LocalStack, run_id: str) -> list[str]:
    """ARNs of every task RunTask started for the run (running or stopped), by the run's group."""
    ecs = stack.client("ecs")
    arns = [
        arn
        for status in ("RUNNING", "STOPPED")
        for arn in ecs.list_tasks(cluster="flowdeck-fresh", desiredStatus=status)["taskArns"]
    ]
    described = ecs.describe_tasks(cluster="flowdeck-fresh", tasks=arns)["tasks"] if arns else []
    return [t["taskArn"] for t in described if t["group"] == f"flowdeck:{run_id}"]


def test_a_retry_starts_no_task_for_a_fresh_step_it_reuses(stack: LocalStack, api: httpx.Client) -> None:
    old = wait(api, start(api, "fresh-retry"))
    assert old["status"] == "failed", old
    assert len(tasks_of_run(stack, old["run_id"])) == 2

    answer = api.post(f"/runs/{old['run_id']}/retry", json={"inputs": {"ready": True}})
    assert answer.status_code == 202, answer.text
    assert answer.json()["reused"] == ["built"]
    new = wait(api, answer.json()["run_id"])

    assert new["status"] == "succeeded", new
    steps = steps_by_id(new)
    # Only the step run again got a task; the reused one keeps its record from the run it comes from.
    assert tasks_of_run(stack, new["run_id"]) == [steps["shipped"]["attempts"][-1]["task_arn"]]
    built = steps["built"]
    assert (built["status"], built["reused_from"]) == ("succeeded", old["run_id"])
    assert built["outputs"] == {"built_in": old["run_id"]}


def test_a_fresh_step_whose_runner_dies_before_answering_fails_at_once_with_the_stop_reason(
    api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "fresh-lost", folder=str(tmp_path))
    runner = step_pid(tmp_path / "runner.pid", 30)

    os.kill(runner, signal.SIGKILL)  # as the OOM killer ends a task's container
    killed = time.monotonic()
    run = wait(api, run_id, timeout=30)
    detected = time.monotonic() - killed
    with contextlib.suppress(OSError):  # the step's process outlived its runner
        os.kill(int((tmp_path / "step.pid").read_text()), signal.SIGKILL)

    step = steps_by_id(run)["waits"]
    assert (run["status"], step["status"], step["error"]) == ("failed", "failed", "TaskStopped")
    assert step["cause"] == (
        "the task of step waits stopped before its runner answered: "
        "Essential container in task exited (exit code -9); runner exited with code -9"
    )
    # ECS's event, not the heartbeat timeout (300 s and more for a fresh step).
    assert detected < 10


def test_a_fresh_step_whose_task_is_stopped_from_outside_fails_at_once_with_the_stop_reason(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "fresh-lost", folder=str(tmp_path))
    step_pid(tmp_path / "runner.pid", 30)
    (attempt,) = steps_by_id(api.get(f"/runs/{run_id}").json())["waits"]["attempts"]

    # Not a cancel: an operator (or Fargate retiring its host) stops the task.
    stack.client("ecs").stop_task(
        cluster="flowdeck-fresh", task=attempt["task_arn"], reason="stopped by an operator"
    )
    stopped = time.monotonic()
    run = wait(api, run_id, timeout=30)
    detected = time.monotonic() - stopped
    with contextlib.suppress(OSError):  # the step's process outlived its runner (on ECS its container stops)
        os.kill(int((tmp_path / "step.pid").read_text()), signal.SIGKILL)

    step = steps_by_id(run)["waits"]
    assert (run["status"], step["status"], step["error"]) == ("failed", "failed", "TaskStopped")
    assert step["cause"] == (
        "the task of step waits stopped before its runner answered: "
        "stopped by an operator; runner exited with code 143"
    )
    # Not after ECS's stop timeout (120 s), nor the heartbeat timeout.
    assert detected < 10
