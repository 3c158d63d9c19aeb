"""Retrying a finished run on the local stack: a new linked run that reuses the steps before its start."""

from __future__ import annotations

import io
import json
import time
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, steps_by_id, wait

pytestmark = pytest.mark.e2e

WORKFLOW = "retry-chain"


def runs_of(marker_dir: Path, step: str) -> list[str]:
    """The run ids in which `step` actually ran (each run appends its id to a counter file)."""
    counter = marker_dir / f"{step}.count"
    return counter.read_text().split() if counter.exists() else []


def failed_run(api: httpx.Client, marker_dir: Path) -> dict[str, Any]:
    """A finished retry-chain run whose build step failed (ready is false)."""
    run = wait(api, start(api, WORKFLOW, marker_dir=str(marker_dir)))
    assert run["status"] == "failed", run
    assert steps_by_id(run)["build"]["status"] == "failed"
    return run


def retry(api: httpx.Client, run_id: str, **body: Any) -> httpx.Response:
    return api.post(f"/runs/{run_id}/retry", json=body)


def follow(api: httpx.Client, path: str) -> httpx.Response:
    answer = api.get(path)
    assert answer.status_code == 302, answer.text
    return httpx.get(answer.headers["location"], timeout=30)


def test_retry_from_a_middle_step_with_changed_inputs_reuses_earlier_outputs(
    api: httpx.Client, tmp_path: Path
) -> None:
    old = failed_run(api, tmp_path)

    answer = retry(api, old["run_id"], from_step="build", inputs={"ready": True})

    assert answer.status_code == 202, answer.text
    started = answer.json()
    assert started | {"run_id": None} == {
        "run_id": None,
        "retry_of": old["run_id"],
        "from_step": ["build"],
        "reused": ["prepare"],
        "status": "running",
    }
    new = wait(api, started["run_id"])
    steps = steps_by_id(new)
    old_steps = steps_by_id(old)
    assert new["status"] == "succeeded", json.dumps(new)[:6000]
    assert new["trigger"] == "retry"
    assert new["started_by"] == "e2e@example.com"
    assert new["retry_of"] == old["run_id"]
    assert (new["retry_from"], new["reused"]) == (["build"], ["prepare"])
    assert new["inputs"] == {"marker_dir": str(tmp_path), "ready": True, "gate": ""}
    # prepare ran once, in the old run; build ran in both.
    assert runs_of(tmp_path, "prepare") == [old["run_id"]]
    assert runs_of(tmp_path, "build") == [old["run_id"], new["run_id"]]
    assert steps["prepare"]["status"] == "succeeded"
    assert steps["prepare"]["reused_from"] == old["run_id"]
    assert steps["prepare"]["outputs"] == old_steps["prepare"]["outputs"]
    assert steps["prepare"]["outputs"]["prepared_in"] == old["run_id"]
    assert steps["prepare"]["started_at"] == old_steps["prepare"]["started_at"]
    assert steps["build"]["reused_from"] is None
    # build saw prepare's outputs and downloaded its artifact, both from the old run.
    assert steps["build"]["outputs"] == {
        "built": "1.2.3",
        "from": old["run_id"],
        "bundle": f"bundle from {old['run_id']}",
    }
    assert steps["publish"]["status"] == "succeeded"
    # Visible both ways: the old run lists its retry, in the run view and in history.
    assert api.get(f"/runs/{old['run_id']}").json()["retries"] == [new["run_id"]]
    history = api.get("/runs", params={"workflow": WORKFLOW, "trigger": "retry"}).json()["runs"]
    assert [row["retry_of"] for row in history if row["run_id"] == new["run_id"]] == [old["run_id"]]


def test_a_reused_steps_artifact_is_listed_and_downloadable_from_the_new_run(
    api: httpx.Client, tmp_path: Path
) -> None:
    old = failed_run(api, tmp_path)
    new_id = retry(api, old["run_id"], inputs={"ready": True}).json()["run_id"]
    wait(api, new_id)

    listing = api.get(f"/runs/{new_id}/artifacts").json()["artifacts"]
    downloaded = follow(api, f"/runs/{new_id}/artifacts/prepare/bundle.txt")
    archive = follow(api, f"/runs/{new_id}/artifacts.zip")

    assert [(row["step"], row["path"]) for row in listing] == [("prepare", "bundle.txt")]
    assert downloaded.status_code == 200
    assert downloaded.text == f"bundle from {old['run_id']}"
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.read("prepare/bundle.txt") == f"bundle from {old['run_id']}".encode()


def test_retry_without_from_step_starts_at_the_failed_step(api: httpx.Client, tmp_path: Path) -> None:
    old = failed_run(api, tmp_path)

    started = retry(api, old["run_id"], inputs={"ready": True}).json()
    new = wait(api, started["run_id"])

    assert started["from_step"] == ["build"]
    assert started["reused"] == ["prepare"]
    assert new["status"] == "succeeded"
    assert runs_of(tmp_path, "prepare") == [old["run_id"]]


def test_retry_without_new_inputs_fails_again_at_the_same_step(api: httpx.Client, tmp_path: Path) -> None:
    old = failed_run(api, tmp_path)

    new = wait(api, retry(api, old["run_id"]).json()["run_id"])

    assert new["status"] == "failed"
    assert steps_by_id(new)["build"]["status"] == "failed"
    assert steps_by_id(new)["prepare"]["reused_from"] == old["run_id"]


def test_retry_from_the_first_step_runs_the_whole_workflow_again(api: httpx.Client, tmp_path: Path) -> None:
    old = failed_run(api, tmp_path)

    started = retry(api, old["run_id"], from_step="prepare", inputs={"ready": True}).json()
    new = wait(api, started["run_id"])

    assert started["reused"] == []
    assert new["status"] == "succeeded"
    assert runs_of(tmp_path, "prepare") == [old["run_id"], new["run_id"]]
    assert all(step["reused_from"] is None for step in new["steps"])
    assert steps_by_id(new)["build"]["outputs"]["from"] == new["run_id"]


def test_a_retry_of_a_retry_reuses_the_step_from_where_it_last_ran(api: httpx.Client, tmp_path: Path) -> None:
    old = failed_run(api, tmp_path)
    second = wait(api, retry(api, old["run_id"]).json()["run_id"])

    third = wait(api, retry(api, second["run_id"], inputs={"ready": True}).json()["run_id"])

    assert third["status"] == "succeeded"
    assert third["retry_of"] == second["run_id"]
    # The reused record names the run where the step really ran, whose outputs and artifacts it shows.
    assert steps_by_id(third)["prepare"]["reused_from"] == old["run_id"]
    assert steps_by_id(third)["build"]["outputs"]["bundle"] == f"bundle from {old['run_id']}"
    assert runs_of(tmp_path, "prepare") == [old["run_id"]]


def test_retry_of_a_running_run_is_refused(api: httpx.Client, tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    run_id = start(api, WORKFLOW, marker_dir=str(tmp_path), gate=str(gate))
    deadline = time.monotonic() + 60
    while api.get(f"/runs/{run_id}").json().get("status") != "running" and time.monotonic() < deadline:
        time.sleep(0.1)

    answer = retry(api, run_id, from_step="build")
    gate.touch()

    assert answer.status_code == 409, answer.text
    assert answer.json()["error"] == "Conflict"
    assert wait(api, run_id).get("retries") == []


def test_retry_with_nothing_failed_needs_a_from_step(api: httpx.Client, tmp_path: Path) -> None:
    run = wait(api, start(api, WORKFLOW, marker_dir=str(tmp_path), ready=True))
    assert run["status"] == "succeeded"

    answer = retry(api, run["run_id"])

    assert answer.status_code == 409
    assert "from_step" in answer.json()["message"]


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"from_step": "deploy"}, 400, "BadRequest"),
        ({"inputs": {"ready": "yes please"}}, 422, "InvalidInputs"),
        ({"inputs": {"unknown": 1}}, 422, "InvalidInputs"),
        ({"from": "build"}, 422, "ValidationError"),
    ],
)
def test_a_bad_retry_request_is_refused_and_starts_nothing(
    api: httpx.Client, tmp_path: Path, body: dict[str, Any], status: int, code: str
) -> None:
    old = failed_run(api, tmp_path)

    answer = retry(api, old["run_id"], **body)

    assert answer.status_code == status, answer.text
    assert answer.json()["error"] == code
    assert api.get(f"/runs/{old['run_id']}").json()["retries"] == []


def test_retry_of_an_unknown_run_is_not_found(api: httpx.Client) -> None:
    answer = retry(api, "20260101-000000-deadbeef")

    assert answer.status_code == 404
    assert answer.json()["error"] == "RunNotFound"


def test_a_repeated_idempotency_key_starts_one_retry(api: httpx.Client, tmp_path: Path) -> None:
    old = failed_run(api, tmp_path)

    first = retry(api, old["run_id"], inputs={"ready": True}, idempotency_key="k1").json()
    again = retry(api, old["run_id"], from_step="prepare", idempotency_key="k1").json()
    wait(api, first["run_id"])

    assert again == first
    assert api.get(f"/runs/{old['run_id']}").json()["retries"] == [first["run_id"]]
    assert runs_of(tmp_path, "build") == [old["run_id"], first["run_id"]]


def test_cli_retries_from_a_step_with_changed_inputs_and_follows(
    api: httpx.Client, stack: LocalStack, tmp_path: Path
) -> None:
    old = failed_run(api, tmp_path)
    cli = CliRunner()
    command = ["retry", old["run_id"], "--from-step", "build", "-i", "ready=true", "--follow", "--json"]

    result = cli.invoke(app, ["--api", stack.api_url, *command])
    shown = cli.invoke(app, ["--api", stack.api_url, "show", old["run_id"]])

    assert result.exit_code == 0, result.output
    final = json.loads(result.output)
    assert final["status"] == "succeeded"
    assert final["retry_of"] == old["run_id"]
    assert steps_by_id(final)["prepare"]["reused_from"] == old["run_id"]
    assert f"Retried by: {final['run_id']}" in shown.output


def test_a_retry_queued_behind_the_concurrency_limit_starts_later_and_still_reuses(
    api: httpx.Client, tmp_path: Path
) -> None:
    old = wait(api, start(api, "retry-queued", marker_dir=str(tmp_path)))
    assert old["status"] == "failed", old
    gate = tmp_path / "gate"
    holder = start(api, "retry-queued", marker_dir=str(tmp_path), gate=str(gate))
    deadline = time.monotonic() + 60
    while api.get(f"/runs/{holder}").json().get("status") != "running" and time.monotonic() < deadline:
        time.sleep(0.1)

    started = retry(api, old["run_id"], inputs={"ready": True}).json()
    queued = api.get(f"/runs/{started['run_id']}").json()
    gate.touch()
    new = wait(api, started["run_id"])

    assert started["status"] == "queued"
    assert queued["status"] == "queued"
    assert queued["retry_of"] == old["run_id"]
    assert new["status"] == "succeeded", json.dumps(new)[:6000]
    assert new["trigger"] == "retry"
    assert steps_by_id(new)["prepare"]["reused_from"] == old["run_id"]
    assert steps_by_id(new)["build"]["outputs"] == {"from": old["run_id"]}
    assert runs_of(tmp_path, "prepare") == [old["run_id"], holder]
