"""End to end on the local stack: real state machines in the emulator, real step processes."""

from __future__ import annotations

import itertools
import json
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import httpx
import pytest

from flowdeck.constants import RUNS_TABLE
from flowdeck.local.stack import LocalStack
from flowdeck.stores.runs import RunStore
from tests.e2e.conftest import start, step_pid, steps_by_id, wait

pytestmark = pytest.mark.e2e


def test_production_deploy_runs_every_step_and_passes_outputs_on(api: httpx.Client) -> None:
    run_id = start(api, "production-deploy", environment="staging")
    # Its approval step waits for two of the platform team (workflows/teams.yaml).
    deadline = time.monotonic() + 60
    while {s["id"]: s["status"] for s in api.get(f"/runs/{run_id}").json().get("steps", [])}.get(
        "approval"
    ) != "waiting":
        assert time.monotonic() < deadline, api.get(f"/runs/{run_id}").text
        time.sleep(0.1)
    for approver in ("jane@example.com", "sam@example.com"):
        approved = api.post(f"/runs/{run_id}/steps/approval/approve", headers={"X-Flowdeck-User": approver})
        assert approved.status_code == 202, approved.text

    run = wait(api, run_id)

    assert run["status"] == "succeeded"
    assert run["trigger"] == "manual"
    assert run["started_by"] == "e2e@example.com"
    assert run["inputs"] == {"environment": "staging", "replicas": 2}
    steps = steps_by_id(run)
    assert [s["id"] for s in run["steps"]] == ["plan", "approval", "apply", "health", "notify"]
    assert {s["status"] for s in run["steps"]} == {"succeeded"}
    assert steps["plan"]["outputs"]["add"] == 3
    assert steps["plan"]["summary"] == "3 to add, 1 to change"
    assert steps["apply"]["outputs"]["endpoint"] == "http://127.0.0.1/health"
    assert steps["notify"]["outputs"]["message"] == (
        f"Deployed staging (3 to add, 1 to change) in run {run_id}"
    )
    # Steps ran in order: each started after the one it needs ended.
    order = ["plan", "approval", "apply", "health", "notify"]
    for before, after in itertools.pairwise(order):
        assert steps[after]["started_at"] >= steps[before]["ended_at"]
    assert run["duration_s"] >= steps["plan"]["duration_s"] + steps["apply"]["duration_s"]


def test_failing_step_fails_the_run_with_its_error_and_stops_there(
    api: httpx.Client, stack: LocalStack
) -> None:
    run = wait(api, start(api, "broken"))

    steps = steps_by_id(run)
    assert run["status"] == "failed"
    assert run["error"] == "StepFailed"
    assert run["error_cause"] == "exit code 3: disk full"
    assert steps["first"]["status"] == "failed"
    assert steps["first"]["exit_code"] == 3
    # The step the failed run never reached reads skipped, with why, and never ran.
    assert (steps["second"]["status"], steps["second"]["not_run"]) == ("skipped", "the run failed at first")
    assert steps["second"]["attempts"] == []
    # ... in its record too: the run-events reaction wrote it once the run ended.
    store = RunStore(RUNS_TABLE, stack.client("dynamodb"))
    deadline = time.monotonic() + 30
    while (second := store.get_run_items(run["run_id"])[1].get("second", {})).get("status") != "skipped":
        assert time.monotonic() < deadline, second
        time.sleep(0.1)
    assert second["not_run"] == "the run failed at first"


def test_retries_run_the_step_again_until_it_succeeds(api: httpx.Client, tmp_path: Path) -> None:
    marker = tmp_path / "count"

    run = wait(api, start(api, "flaky", marker=str(marker)))

    wobble = steps_by_id(run)["wobble"]
    assert run["status"] == "succeeded"
    assert marker.read_text() == "3"
    assert wobble["status"] == "succeeded"
    assert wobble["attempt"] == 3
    assert [(a["attempt"], a["status"]) for a in wobble["attempts"]] == [
        (1, "failed"),
        (2, "failed"),
        (3, "succeeded"),
    ]
    assert wobble["attempts"][0]["exit_code"] == 7
    # The retry interval (1 s) separates the attempts.
    ended = datetime.fromisoformat(wobble["attempts"][0]["ended_at"])
    restarted = datetime.fromisoformat(wobble["attempts"][1]["started_at"])
    assert (restarted - ended).total_seconds() >= 0.9


def test_step_past_its_timeout_fails_with_step_timeout(api: httpx.Client) -> None:
    started = time.monotonic()

    run = wait(api, start(api, "slow"))

    assert time.monotonic() - started < 20
    sleepy = steps_by_id(run)["sleepy"]
    assert run["status"] == "failed"
    assert sleepy["status"] == "failed"
    assert sleepy["error"] == "StepTimeout"
    assert run["error"] == "StepTimeout"


def test_parallel_branches_conditions_and_tolerated_failures(api: httpx.Client) -> None:
    run = wait(api, start(api, "branches"))

    steps = steps_by_id(run)
    assert run["status"] == "succeeded"
    assert steps["deploy"]["status"] == "skipped"
    assert steps["optional"]["status"] == "failed"
    assert steps["report"]["status"] == "succeeded"
    assert steps["report"]["outputs"] == {"seen": "1.2.3"}
    # left and right each sleep 1 s; side by side they overlap.
    assert steps["left"]["started_at"] < steps["right"]["ended_at"]
    assert steps["right"]["started_at"] < steps["left"]["ended_at"]


def test_condition_true_runs_the_step(api: httpx.Client) -> None:
    run = wait(api, start(api, "branches", deploy=True))

    assert steps_by_id(run)["deploy"]["status"] == "succeeded"


def test_execution_started_from_the_console_is_recorded(stack: LocalStack, api: httpx.Client) -> None:
    sfn = stack.client("stepfunctions")
    arn = f"{stack.env['FLOWDECK_STATE_MACHINE_ARN_PREFIX']}hello"

    # The AWS console's default input carries none of Flowdeck's fields.
    sfn.start_execution(stateMachineArn=arn, name="console-start-1", input=json.dumps({"Comment": "hi"}))
    run = wait(api, "console-start-1")

    assert run["status"] == "succeeded"
    assert run["trigger"] == "manual"
    assert run["started_by"] == "aws-console"
    assert run["inputs"] == {"who": "world"}


def test_repeated_idempotency_key_starts_one_run(api: httpx.Client) -> None:
    body = {"inputs": {"who": "twice"}, "idempotency_key": "deploy-42"}

    first = api.post("/workflows/hello/runs", json=body)
    second = api.post("/workflows/hello/runs", json=body)

    assert first.json()["run_id"] == second.json()["run_id"]
    assert wait(api, first.json()["run_id"])["status"] == "succeeded"


def test_a_worker_told_to_stop_hands_its_step_back_to_run_on_another_worker(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "stopped", piddir=str(tmp_path))
    first = step_pid(tmp_path / "attempt-1.pid", 20)
    os.kill(first, signal.SIGTERM)  # what ECS sends on a scale-in or a deploy
    run = wait(api, run_id, timeout=60)

    handed = steps_by_id(run)["handed"]
    assert run["status"] == "succeeded"
    assert (handed["status"], handed["attempt"]) == ("succeeded", 2)
    attempts = {a["attempt"]: a for a in handed["attempts"]}
    assert (attempts[1]["status"], attempts[1]["error"]) == ("failed", "WorkerStopped")
    # Another worker process ran it the second time.
    assert int((tmp_path / "attempt-2.pid").read_text()) != first


def test_killed_worker_fails_the_step_with_worker_lost(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    pidfile = tmp_path / "worker.pid"
    run_id = start(api, "lost", pidfile=str(pidfile))
    os.kill(step_pid(pidfile, 20), signal.SIGKILL)
    run = wait(api, run_id, timeout=30)

    victim = steps_by_id(run)["victim"]
    assert run["status"] == "failed"
    assert victim["status"] == "failed"
    assert victim["error"] == "WorkerLost"
    assert run["error"] == "WorkerLost"
    # What the step printed before its worker died is kept.
    logs = api.get(f"/runs/{run_id}/logs", params={"format": "text"}).text
    assert [f"before the crash {n}" in logs for n in range(3)] == [True, True, True]
