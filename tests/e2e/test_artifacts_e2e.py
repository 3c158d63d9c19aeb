"""Artifacts end to end on the local stack: real steps upload, later steps download, the API serves them."""

from __future__ import annotations

import hashlib
import io
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.constants import ARTIFACTS_BUCKET
from flowdeck.local.stack import LocalStack
from flowdeck.local.sweeper import ArtifactSweeper
from flowdeck.stores.artifacts import ArtifactStore
from tests.e2e.conftest import start, steps_by_id, wait

pytestmark = pytest.mark.e2e

JUNIT = (
    b'<testsuite tests="1" failures="1"><testcase name="t"><failure>boom</failure></testcase></testsuite>\n'
)
TFPLAN = b'resource "x" {}\n3 to add\n'


def follow(api: httpx.Client, path: str) -> httpx.Response:
    """The API's 302, then the presigned URL it points at (the emulator's S3)."""
    answer = api.get(path)
    assert answer.status_code == 302, answer.text
    return httpx.get(answer.headers["location"], timeout=30)


def test_failing_steps_junit_report_is_listed_and_downloadable(api: httpx.Client) -> None:
    run = wait(api, start(api, "junit-report"))

    step = steps_by_id(run)["test"]
    assert run["status"] == "failed"
    assert step["exit_code"] == 1
    assert [a["path"] for a in step["artifacts"]] == ["reports/junit.xml"]
    assert step["artifact_warnings"] == ["no file matches 'coverage/*.xml'"]
    listing = api.get(f"/runs/{run['run_id']}/artifacts").json()
    (report,) = listing["artifacts"]
    assert report | {"expires_at": None} == {
        "step": "test",
        "path": "reports/junit.xml",
        "size": len(JUNIT),
        "content_type": report["content_type"],
        "sha256": hashlib.sha256(JUNIT).hexdigest(),
        "expires_at": None,
        "expired": False,
    }
    downloaded = follow(api, f"/runs/{run['run_id']}/artifacts/test/reports/junit.xml")
    assert downloaded.status_code == 200
    assert downloaded.content == JUNIT
    preview = api.get(f"/runs/{run['run_id']}/artifacts/test/reports/junit.xml", params={"preview": "true"})
    assert preview.json()["preview"] == JUNIT.decode()


def test_apply_consumes_the_plan_artifact_and_the_zip_holds_it(api: httpx.Client, tmp_path: Path) -> None:
    run = wait(api, start(api, "plan-apply"))

    steps = steps_by_id(run)
    assert run["status"] == "succeeded", run
    assert steps["apply"]["outputs"] == {"plan_sha256": hashlib.sha256(TFPLAN).hexdigest()}
    archive = follow(api, f"/runs/{run['run_id']}/artifacts.zip")
    assert archive.status_code == 200
    with zipfile.ZipFile(io.BytesIO(archive.content)) as opened:
        assert opened.namelist() == ["plan/tfplan"]
        assert opened.read("plan/tfplan") == TFPLAN


def test_cli_lists_and_downloads_artifacts(api: httpx.Client, stack: LocalStack, tmp_path: Path) -> None:
    run_id = wait(api, start(api, "plan-apply"))["run_id"]
    cli = CliRunner()

    listed = cli.invoke(app, ["--api", stack.api_url, "artifacts", run_id])
    one = cli.invoke(
        app,
        [
            "--api",
            stack.api_url,
            "artifacts",
            run_id,
            "--download",
            "plan:tfplan",
            "-o",
            str(tmp_path / "tfplan"),
        ],
    )
    every = cli.invoke(
        app, ["--api", stack.api_url, "artifacts", run_id, "--zip", "-o", str(tmp_path / "all.zip")]
    )

    assert listed.exit_code == 0 and "tfplan" in listed.output
    assert one.exit_code == 0, one.output
    assert (tmp_path / "tfplan").read_bytes() == TFPLAN
    assert every.exit_code == 0, every.output
    assert zipfile.ZipFile(tmp_path / "all.zip").namelist() == ["plan/tfplan"]


def test_outputs_over_the_payload_limit_reach_a_later_step(api: httpx.Client) -> None:
    run = wait(api, start(api, "big-outputs"))

    steps = steps_by_id(run)
    assert run["status"] == "succeeded", run
    assert steps["consume"]["outputs"] == {"length": 300 * 1024}
    assert len(steps["produce"]["outputs"]["blob"]) == 300 * 1024


def test_an_expired_artifact_is_gone_and_the_sweeper_deletes_it(api: httpx.Client, stack: LocalStack) -> None:
    run = wait(api, start(api, "plan-apply"))
    path = f"/runs/{run['run_id']}/artifacts/plan/tfplan"
    ddb = stack.client("dynamodb")
    key = {"pk": {"S": run["run_id"]}, "sk": {"S": "STEP#plan"}}
    item = ddb.get_item(TableName="flowdeck-runs", Key=key)["Item"]
    for record in item["artifacts"]["L"]:
        record["M"]["expires_at"] = {"S": (datetime.now(UTC) - timedelta(minutes=1)).isoformat()}
    ddb.put_item(TableName="flowdeck-runs", Item=item)

    gone = api.get(path)
    # Only this workflow's objects are old enough to go (retention 0 h here; other workflows keep theirs).
    store = ArtifactStore(ARTIFACTS_BUCKET, stack.client("s3"))
    swept = ArtifactSweeper(store, {"plan-apply": 0}, stack._stopping).sweep()

    assert (gone.status_code, gone.json()["error"]) == (410, "ArtifactExpired")
    assert f"runs/plan-apply/{run['run_id']}/plan/tfplan" in swept
    assert not [k for k in swept if not k.startswith("runs/plan-apply/")]
