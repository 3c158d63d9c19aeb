"""Artifacts on moto: the S3 store, the worker's upload/download and offloaded outputs, the API routes."""

from __future__ import annotations

import hashlib
import io
import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest

from flowdeck.config import Settings
from flowdeck.constants import ARTIFACTS_BUCKET
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.step_runner import StepRunner
from flowdeck.stores.artifacts import ArtifactStore, s3_client
from flowdeck.stores.runs import RunStore
from tests.integration.test_api import api_event
from tests.integration.test_worker import FakeStepFunctions, Lines

TABLE = "flowdeck-runs-test"  # as in conftest.py
RUN_ID = "20261121-101500-abcd0123"
WORKFLOW = "deploy"


@pytest.fixture
def s3(flowdeck_aws: tuple[Any, Any]) -> Any:
    client = s3_client()
    client.create_bucket(Bucket=ARTIFACTS_BUCKET)
    return client


@pytest.fixture
def store(s3: Any) -> ArtifactStore:
    return ArtifactStore(ARTIFACTS_BUCKET, s3)


@pytest.fixture
def runs(flowdeck_aws: tuple[Any, Any], store: ArtifactStore) -> RunStore:
    return RunStore(TABLE, flowdeck_aws[0], artifacts=store)


@pytest.fixture
def runner(
    runs: RunStore, store: ArtifactStore, tmp_path: Path
) -> Iterator[tuple[StepRunner, FakeStepFunctions]]:
    workspace = tmp_path / "workspace"
    (workspace / "scripts").mkdir(parents=True)
    (workspace / "scripts" / "tool.py").write_text("print('a workspace input')\n")
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=workspace)
    sfn = FakeStepFunctions()
    step_runner = StepRunner(settings, runs, sfn, store)
    yield step_runner, sfn
    step_runner.io.shutdown(wait=True)


def seed_run(ddb: Any, steps: list[str], run_id: str = RUN_ID) -> None:
    ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": run_id},
            "sk": {"S": "RUN"},
            "kind": {"S": "run"},
            "run_id": {"S": run_id},
            "workflow": {"S": WORKFLOW},
            "status": {"S": "running"},
            "started_at": {"S": "2026-11-21T10:15:00+00:00"},
            "plan": {"L": [{"M": {"id": {"S": s}, "kind": {"S": "run"}}} for s in steps]},
        },
    )


def message(
    step: str, script: str, token: str, retention_hours: int = 24, **artifacts: list[str]
) -> StepMessage:
    return StepMessage(
        token=token,
        run_id=RUN_ID,
        workflow=WORKFLOW,
        step=step,
        retention_hours=retention_hours,
        spec=StepSpec(command=[sys.executable, "-c", script], timeout=60, artifacts=artifacts or None),
    )


JUNIT = (
    '<testsuite tests="1" failures="1"><testcase name="t"><failure>boom</failure></testcase></testsuite>\n'
)
FAILING_TESTS = f"""
import os, pathlib, sys
pathlib.Path("reports").mkdir()
pathlib.Path("reports/junit.xml").write_text({JUNIT!r})
pathlib.Path("tfplan").write_bytes(bytes(range(256)) * 8)
sys.exit(1)
"""


# -- the store ------------------------------------------------------------------------------------
def test_store_uploads_presigns_reads_heads_and_lists(store: ArtifactStore, tmp_path: Path) -> None:
    file = tmp_path / "report.txt"
    file.write_text("x" * 2000)
    key = "runs/deploy/r1/test/report.txt"

    store.upload_file(str(file), key, "text/plain")

    assert store.read_head(key, 1024) == b"x" * 1024
    assert store.head(key)["ContentType"] == "text/plain"
    assert store.head("runs/deploy/r1/test/missing") is None
    assert [o["Key"] for o in store.list_keys("runs/deploy/")] == [key]
    url = urlparse(store.presign(key, filename="report.txt"))
    assert url.path.endswith("/runs/deploy/r1/test/report.txt")
    query = parse_qs(url.query)
    assert query["X-Amz-Expires"] == ["300"]  # SigV4, five minutes
    store.delete_keys([key])
    assert list(store.list_keys("runs/")) == []


# -- the worker -----------------------------------------------------------------------------------
def test_failing_step_uploads_its_report_before_answering_and_records_it(runner, runs, store, flowdeck_aws):
    step_runner, sfn = runner
    seed_run(flowdeck_aws[0], ["test"])

    result = step_runner.handle(
        message("test", FAILING_TESTS, "t1", upload=["reports/*.xml", "tfplan", "coverage/*", "scripts/*"]),
        Lines(),
    )

    assert result is not None and result.status == "failed"
    assert [kind for kind, _ in sfn.answers()] == ["failure"]
    item = runs.get_run_items(RUN_ID)[1]["test"]
    by_path = {a["path"]: a for a in item["artifacts"]}
    assert set(by_path) == {"reports/junit.xml", "tfplan"}
    junit = by_path["reports/junit.xml"]
    assert junit["key"] == f"runs/{WORKFLOW}/{RUN_ID}/test/reports/junit.xml"
    assert junit["size"] == len(JUNIT)
    assert junit["content_type"] in ("application/xml", "text/xml")
    assert junit["sha256"] == hashlib.sha256(JUNIT.encode()).hexdigest()
    assert junit["expires_at"] > item["ended_at"]
    assert item["artifact_warnings"] == ["no file matches 'coverage/*'", "no file matches 'scripts/*'"]
    assert store.read_head(junit["key"], 4096).decode() == JUNIT


def test_later_step_downloads_an_earlier_steps_artifact(runner, flowdeck_aws):
    step_runner, _sfn = runner
    seed_run(flowdeck_aws[0], ["plan", "apply"])
    plan = "import pathlib; pathlib.Path('tfplan').write_text('3 to add')"
    step_runner.handle(message("plan", plan, "t1", upload=["tfplan"]), Lines())
    apply = (
        "import hashlib, os, pathlib; "
        "p = pathlib.Path(os.environ['FLOWDECK_ARTIFACTS_DIR'], 'plan', 'tfplan'); "
        "print(p.read_text(), hashlib.sha256(p.read_bytes()).hexdigest())"
    )
    lines = Lines()

    result = step_runner.handle(message("apply", apply, "t2", download=["plan:tfplan"]), lines)

    assert result is not None and result.status == "succeeded", lines.lines
    assert ("stdout", f"3 to add {hashlib.sha256(b'3 to add').hexdigest()}") in lines.lines


def test_outputs_over_the_inline_limit_go_to_s3_and_reach_later_steps_whole(runner, runs, flowdeck_aws):
    step_runner, sfn = runner
    seed_run(flowdeck_aws[0], ["big", "reader"])
    write = (
        "import json, os; "
        "json.dump({'blob': 'x' * 300 * 1024, 'n': 1}, open(os.environ['FLOWDECK_OUTPUTS'], 'w'))"
    )
    step_runner.handle(message("big", write, "t1"), Lines())
    stored = flowdeck_aws[0].get_item(TableName=TABLE, Key={"pk": {"S": RUN_ID}, "sk": {"S": "OUTPUTS"}})[
        "Item"
    ]
    read = (
        "import json, os; "
        "big = json.load(open(os.environ['FLOWDECK_STEP_BIG_OUTPUTS_FILE'])); "
        "print(len(big['blob']), 'FLOWDECK_STEP_BIG_OUTPUTS' in os.environ)"
    )
    lines = Lines()

    result = step_runner.handle(message("reader", read, "t2"), lines)

    ref = stored["outputs#big"]["M"]["$ref"]["S"]
    assert ref == f"s3://{ARTIFACTS_BUCKET}/runs/{WORKFLOW}/{RUN_ID}/big/.flowdeck/outputs.json"
    assert json.loads(sfn.answers()[0][1]["output"])["outputs"] == {"$ref": ref}  # state payload stays small
    assert runs.step_outputs(RUN_ID)["big"] == {"blob": "x" * 300 * 1024, "n": 1}
    assert result is not None and result.status == "succeeded", lines.lines
    assert ("stdout", f"{300 * 1024} False") in lines.lines


# -- the API --------------------------------------------------------------------------------------
def location_of(answer: dict[str, Any]) -> str:
    headers = {k.lower(): v for k, v in (answer.get("headers") or {}).items()}
    multi = {k.lower(): v for k, v in (answer.get("multiValueHeaders") or {}).items()}
    return str(headers.get("location") or multi["location"][0])


@pytest.fixture
def api_with_artifacts(runner, flowdeck_aws, lambda_context) -> Any:
    """A run whose failed `test` step uploaded a report and a binary plan, and the handler to ask."""
    from lambdas.api import lambda_handler

    step_runner, _ = runner
    seed_run(flowdeck_aws[0], ["test"])
    step_runner.handle(message("test", FAILING_TESTS, "t1", upload=["reports/*.xml", "tfplan"]), Lines())

    def call(path: str, **query: str) -> dict[str, Any]:
        return lambda_handler(api_event("GET", path, query=query or None), lambda_context)

    return call


def test_api_lists_artifacts_with_expiry(api_with_artifacts) -> None:
    answer = api_with_artifacts(f"/runs/{RUN_ID}/artifacts")

    body = json.loads(answer["body"])
    assert answer["statusCode"] == 200
    assert [(a["step"], a["path"], a["expired"]) for a in body["artifacts"]] == [
        ("test", "reports/junit.xml", False),
        ("test", "tfplan", False),
    ]


def test_api_redirects_one_artifact_to_a_presigned_url(api_with_artifacts) -> None:
    answer = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/reports/junit.xml")

    assert answer["statusCode"] == 302
    location = urlparse(location_of(answer))
    assert location.path.endswith(f"/runs/{WORKFLOW}/{RUN_ID}/test/reports/junit.xml")
    assert "X-Amz-Signature" in parse_qs(location.query) or "Signature" in parse_qs(location.query)


def test_api_answers_the_presigned_url_as_json_when_asked_for_a_link(api_with_artifacts) -> None:
    redirect = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/reports/junit.xml")
    nested = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/reports/junit.xml", link="true")
    flat = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/tfplan", link="true")
    archive = api_with_artifacts(f"/runs/{RUN_ID}/artifacts.zip", link="true")

    for answer in (nested, flat, archive):
        assert answer["statusCode"] == 200, answer
        assert set(json.loads(answer["body"])) == {"url"}
    assert urlparse(json.loads(nested["body"])["url"]).path == urlparse(location_of(redirect)).path
    assert urlparse(json.loads(flat["body"])["url"]).path.endswith(f"/{RUN_ID}/test/tfplan")
    assert "X-Amz-Signature" in parse_qs(urlparse(json.loads(archive["body"])["url"]).query)


def test_api_previews_the_first_kib_of_text_and_refuses_binary(api_with_artifacts) -> None:
    text = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/reports/junit.xml", preview="true")
    binary = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/tfplan", preview="true")

    assert text["statusCode"] == 200
    assert json.loads(text["body"]) | {"content_type": "x"} == {
        "path": "reports/junit.xml",
        "step": "test",
        "content_type": "x",
        "size": len(JUNIT),
        "preview": JUNIT,
        "truncated": False,
    }
    assert (binary["statusCode"], json.loads(binary["body"])["error"]) == (422, "NotText")


def test_api_answers_404_for_unknown_artifacts_and_runs(api_with_artifacts) -> None:
    for path, code in [
        (f"/runs/{RUN_ID}/artifacts/test/nope.txt", "ArtifactNotFound"),
        (f"/runs/{RUN_ID}/artifacts/other/reports/junit.xml", "ArtifactNotFound"),
        ("/runs/no-such-run/artifacts", "RunNotFound"),
        ("/runs/no-such-run/artifacts.zip", "RunNotFound"),
    ]:
        answer = api_with_artifacts(path)
        assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (404, code), path


def test_api_answers_410_for_an_artifact_past_its_retention(api_with_artifacts, flowdeck_aws) -> None:
    ddb = flowdeck_aws[0]
    key = {"pk": {"S": RUN_ID}, "sk": {"S": "STEP#test"}}
    item = ddb.get_item(TableName=TABLE, Key=key)["Item"]
    for record in item["artifacts"]["L"]:
        record["M"]["expires_at"] = {"S": "2026-01-01T00:00:00+00:00"}
    ddb.put_item(TableName=TABLE, Item=item)

    answer = api_with_artifacts(f"/runs/{RUN_ID}/artifacts/test/reports/junit.xml")
    listing = json.loads(api_with_artifacts(f"/runs/{RUN_ID}/artifacts")["body"])

    assert (answer["statusCode"], json.loads(answer["body"])["error"]) == (410, "ArtifactExpired")
    assert {a["expired"] for a in listing["artifacts"]} == {True}


def test_api_builds_a_zip_of_all_artifacts_in_s3_and_redirects_to_it(api_with_artifacts, s3) -> None:
    answer = api_with_artifacts(f"/runs/{RUN_ID}/artifacts.zip")
    again = api_with_artifacts(f"/runs/{RUN_ID}/artifacts.zip", step="test")

    assert answer["statusCode"] == 302 and again["statusCode"] == 302
    zips = [o["Key"] for o in s3.list_objects_v2(Bucket=ARTIFACTS_BUCKET, Prefix="runs/")["Contents"]]
    zips = [k for k in zips if "/.flowdeck/zips/" in k]
    assert len(zips) == 1  # the same artifacts: the ZIP built first is reused
    assert urlparse(location_of(answer)).path.endswith(zips[0])
    archive = zipfile.ZipFile(io.BytesIO(s3.get_object(Bucket=ARTIFACTS_BUCKET, Key=zips[0])["Body"].read()))
    assert archive.namelist() == ["test/reports/junit.xml", "test/tfplan"]
    assert archive.read("test/reports/junit.xml").decode() == JUNIT
    assert archive.read("test/tfplan") == bytes(range(256)) * 8


def test_run_view_shows_each_steps_artifacts_and_outputs(api_with_artifacts) -> None:
    run = json.loads(api_with_artifacts(f"/runs/{RUN_ID}")["body"])

    (step,) = run["steps"]
    assert [a["path"] for a in step["artifacts"]] == ["reports/junit.xml", "tfplan"]


def test_offloaded_outputs_past_retention_read_as_a_marked_reference(runs, store, flowdeck_aws) -> None:
    ref = {"$ref": store.ref("runs/deploy/gone/big/.flowdeck/outputs.json")}
    runs.publish_outputs("gone", "big", ref)

    assert runs.step_outputs("gone") == {"big": ref | {"expired": True}}
