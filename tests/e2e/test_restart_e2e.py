"""The local stack keeps its state across restarts, and records runs it left in flight as failed."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from flowdeck.local.stack import LocalStack, free_port
from tests.e2e.conftest import steps_by_id, wait

HERE = Path(__file__).parent
# Its two module-scoped stacks (before and after the restart) stay on one xdist worker.
pytestmark = pytest.mark.xdist_group("restart")
USER = {"X-Flowdeck-User": "jane@example.com"}


def poll(api: httpx.Client, run_id: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = api.get(f"/runs/{run_id}").json()
        if done(run):
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} never got there: {run}")


def step_of(run: dict[str, Any], step_id: str) -> dict[str, Any]:
    """The step of a run read through the API ({} while the run is not recorded yet)."""
    return next((s for s in run.get("steps", []) if s["id"] == step_id), {})


def start(api: httpx.Client, workflow: str) -> str:
    answer = api.post(f"/workflows/{workflow}/runs", json={"inputs": {}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["run_id"])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("kept")


@pytest.fixture(scope="module")
def before_restart(data_dir: Path) -> dict[str, str]:
    """A finished run, a run waiting for approval and a run with a running step; then the stack stops."""
    with (
        LocalStack(HERE / "restart", port=free_port(), workers=1, data_dir=data_dir) as stack,
        httpx.Client(base_url=stack.api_url, headers=USER, timeout=30) as api,
    ):
        stack.client("secretsmanager").create_secret(Name="deploy-hook", SecretString="s3cret")
        finished = start(api, "kept")
        assert wait(api, finished)["status"] == "succeeded"
        waiting = start(api, "gate")
        poll(api, waiting, lambda r: r.get("status") == "waiting")
        running = start(api, "busy")
        poll(
            api, running, lambda r: {"id": "long", "status": "running"}.items() <= step_of(r, "long").items()
        )
        queued = start(api, "busy")
        assert api.get(f"/runs/{queued}").json()["status"] == "queued"
    return {"finished": finished, "waiting": waiting, "running": running, "queued": queued}


@pytest.fixture(scope="module")
def after_restart(data_dir: Path, before_restart: dict[str, str]) -> Any:
    with (
        LocalStack(HERE / "restart", port=free_port(), workers=1, data_dir=data_dir) as stack,
        httpx.Client(base_url=stack.api_url, headers=USER, timeout=30) as api,
    ):
        yield stack, api


def test_a_finished_run_keeps_its_record_logs_and_artifacts(
    before_restart: dict[str, str], after_restart: Any
) -> None:
    _, api = after_restart
    run_id = before_restart["finished"]
    assert api.get(f"/runs/{run_id}").json()["status"] == "succeeded"
    assert "made it" in api.get(f"/runs/{run_id}/logs", params={"format": "text"}).text
    listed = api.get(f"/runs/{run_id}/artifacts").json()
    assert [a["path"] for a in listed["artifacts"]] == ["report.txt"]
    preview = api.get(f"/runs/{run_id}/artifacts/make/report.txt", params={"preview": "true"}).json()
    assert preview["preview"].strip() == "report"
    history = api.get("/runs", params={"workflow": "kept"}).json()
    assert [r["run_id"] for r in history["runs"]] == [run_id]


def test_a_queued_run_starts_once_the_run_it_waited_for_is_recorded_failed(
    before_restart: dict[str, str], after_restart: Any
) -> None:
    _, api = after_restart
    queued = before_restart["queued"]

    run = poll(api, queued, lambda r: r.get("status") != "queued")

    assert run["status"] in ("running", "succeeded")
    # Not left running: the retry below takes the one slot (and a stack stops once its steps stopped).
    assert api.post(f"/runs/{queued}/cancel", json={"mode": "force"}).status_code == 202


def test_runs_in_flight_are_recorded_failed_and_retryable(
    before_restart: dict[str, str], after_restart: Any
) -> None:
    stack, api = after_restart
    assert set(stack.interrupted) == {before_restart["waiting"], before_restart["running"]}
    waiting = api.get(f"/runs/{before_restart['waiting']}").json()
    running = api.get(f"/runs/{before_restart['running']}").json()
    saved_at = (stack.state.folder / "saved_at").read_text()
    for run in (waiting, running):
        assert run["status"] == "failed"
        assert run["error"] == "LocalStackStopped"
        assert f"flowdeck retry {run['run_id']}" in run["error_cause"]
        # Ended when the stack stopped (its last save), not when it started again.
        assert run["started_at"] < run["ended_at"] <= saved_at
    assert steps_by_id(waiting)["approval"]["status"] == "failed"
    assert steps_by_id(running)["first"]["status"] == "succeeded"
    assert steps_by_id(running)["long"]["status"] == "failed"
    assert steps_by_id(running)["long"]["error"] == "LocalStackStopped"
    assert api.get("/inbox").json()["approvals"] == []
    retry = api.post(f"/runs/{before_restart['running']}/retry", json={})
    assert retry.status_code == 202, retry.text
    assert retry.json()["reused"] == ["first"]
    # Not left running: a stack stops only once its steps have stopped.
    api.post(f"/runs/{retry.json()['run_id']}/cancel", json={"mode": "force"})


def test_secrets_are_kept(after_restart: Any) -> None:
    stack, _ = after_restart
    assert stack.client("secretsmanager").get_secret_value(SecretId="deploy-hook")["SecretString"] == "s3cret"


def test_fresh_forgets_the_kept_state_and_scratch(data_dir: Path, after_restart: Any) -> None:
    stack, _ = after_restart
    stack.stop()
    assert (data_dir / "state" / "tables").is_dir() and (data_dir / "scratch").is_dir()

    LocalStack(HERE / "restart", data_dir=data_dir, fresh=True).prepare_data_dir()

    assert not (data_dir / "state").exists() and not (data_dir / "scratch").exists()
    assert (data_dir / "logs" / "emulator.log").exists()  # logs append; they are not state
