"""The local stack's state on disk (flowdeck.local.state) and its scratch sweeper, against moto."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck import constants
from flowdeck.local.stack import default_data_dir
from flowdeck.local.state import STOPPED_ERROR, LocalState
from flowdeck.local.sweeper import ScratchSweeper
from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_logs_table_kwargs, create_table_kwargs


def clients(service: str) -> Any:
    return boto3.client(service, region_name="us-east-1")  # type: ignore[call-overload]


def bootstrap() -> None:
    """What LocalStack._bootstrap creates that the state covers (empty)."""
    clients("dynamodb").create_table(**create_table_kwargs(constants.RUNS_TABLE))
    clients("dynamodb").create_table(**create_logs_table_kwargs(constants.LOGS_TABLE))
    clients("s3").create_bucket(Bucket=constants.ARTIFACTS_BUCKET)


def put(item: dict[str, str]) -> None:
    clients("dynamodb").put_item(TableName=constants.RUNS_TABLE, Item={k: {"S": v} for k, v in item.items()})


def item(run_id: str, sk: str) -> dict[str, Any]:
    got = clients("dynamodb").get_item(
        TableName=constants.RUNS_TABLE, Key={"pk": {"S": run_id}, "sk": {"S": sk}}
    )
    return {k: next(iter(v.values())) for k, v in got["Item"].items()}


@pytest.fixture
def saved(tmp_path: Path) -> Iterator[Path]:
    """A state saved by one emulator: a finished run, a waiting run, an artifact and a secret."""
    with mock_aws():
        bootstrap()
        put({"pk": "r-done", "sk": "RUN", "status": "succeeded", "workflow": "hello"})
        put(
            {"pk": "r-wait", "sk": "RUN", "status": "waiting", "workflow": "gate", "started_at": "2026-01-01"}
        )
        put({"pk": "r-wait", "sk": "STEP#approval", "status": "waiting", "wait_token": "tok"})
        put({"pk": "r-wait", "sk": "STEP#before", "status": "succeeded"})
        clients("s3").put_object(
            Bucket=constants.ARTIFACTS_BUCKET, Key="runs/hello/r-done/a/b.txt", Body=b"hi"
        )
        clients("secretsmanager").create_secret(Name="deploy-hook", SecretString="s3cret")
        LocalState(tmp_path / "state", clients).save()
    yield tmp_path / "state"


def test_a_saved_state_comes_back_in_a_new_emulator(saved: Path) -> None:
    with mock_aws():
        bootstrap()
        state = LocalState(saved, clients)

        restored = state.restore()

        assert restored.runs == 2 and restored.objects == 1 and restored.secrets == 1
        assert restored.in_flight == [{"run_id": "r-wait", "workflow": "gate"}]
        assert item("r-done", "RUN")["status"] == "succeeded"
        body = clients("s3").get_object(Bucket=constants.ARTIFACTS_BUCKET, Key="runs/hello/r-done/a/b.txt")
        assert body["Body"].read() == b"hi"
        assert clients("secretsmanager").get_secret_value(SecretId="deploy-hook")["SecretString"] == "s3cret"
        assert oct((saved / "secrets.json").stat().st_mode & 0o777) == "0o600"


def test_compressed_log_batches_come_back_byte_for_byte(tmp_path: Path) -> None:
    # Given a run's log batch (a binary attribute) saved by one emulator
    batch = [{"t": 1.5, "stream": "stdout", "text": "ünïcode \x1b[1mbold\x1b[0m"}]
    with mock_aws():
        bootstrap()
        LogStore(constants.LOGS_TABLE, clients("dynamodb")).append("r-done", "build", 1, batch, 0)
        stored = clients("dynamodb").scan(TableName=constants.LOGS_TABLE)["Items"]
        LocalState(tmp_path / "state", clients).save()
    # When a new emulator restores it
    with mock_aws():
        bootstrap()
        restored = LocalState(tmp_path / "state", clients).restore()
        # Then the item is the same, and the log reads as it did
        assert restored.items[constants.LOGS_TABLE] == 1
        assert clients("dynamodb").scan(TableName=constants.LOGS_TABLE)["Items"] == stored
        assert (
            LogStore(constants.LOGS_TABLE, clients("dynamodb")).batches_after("r-done", 0)[0]["lines"]
            == batch
        )


def test_runs_left_in_flight_are_failed_once_at_the_time_the_stack_stopped(saved: Path) -> None:
    with mock_aws():
        bootstrap()
        state = LocalState(saved, clients)
        restored = state.restore()

        assert state.fail_interrupted(restored.in_flight) == ["r-wait"]
        assert state.fail_interrupted(restored.in_flight) == []  # a second pass changes nothing

        run, step, before = (
            item("r-wait", "RUN"),
            item("r-wait", "STEP#approval"),
            item("r-wait", "STEP#before"),
        )
        assert (run["status"], run["error"]) == ("failed", STOPPED_ERROR)
        assert run["ended_at"] == (saved / "saved_at").read_text()
        assert json.loads(run["error_json"])["Cause"].endswith("flowdeck retry r-wait")
        assert run["workflow_status"].endswith("failed")
        assert (step["status"], step["error"]) == ("failed", STOPPED_ERROR) and "wait_token" not in step
        assert before["status"] == "succeeded"


def test_an_unchanged_object_is_not_written_again(saved: Path) -> None:
    files = {p.name: p.stat().st_mtime_ns for p in (saved / "s3").iterdir()}
    with mock_aws():
        bootstrap()
        state = LocalState(saved, clients)
        state.restore()
        time.sleep(0.01)
        state.save()
        assert {
            p.name: p.stat().st_mtime_ns for p in (saved / "s3").iterdir() if p.name != "manifest.json"
        } == {k: v for k, v in files.items() if k != "manifest.json"}
        # Restored objects keep their first upload time for retention.
        (key,) = state.uploaded_at()
        assert state.uploaded_at()[key] <= datetime.now(UTC)


def test_each_port_has_its_own_data_folder() -> None:
    assert default_data_dir(8765) != default_data_dir(8766)
    assert default_data_dir(8765) == Path(".flowdeck") / "8765"


class FakeRuns:
    def __init__(self, runs: dict[str, dict[str, Any]]) -> None:
        self.runs = runs

    def get_run_items(self, run_id: str) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any]]:
        return self.runs.get(run_id), {}, {}


def test_scratch_folders_go_when_their_runs_retention_ends(tmp_path: Path) -> None:
    now = datetime(2026, 12, 6, 12, tzinfo=UTC)
    for run_id in ("old", "recent", "running", "unknown"):
        (tmp_path / run_id / "step" / "1").mkdir(parents=True)
    os.utime(tmp_path / "unknown", (0, 0))  # untouched since 1970, and no run item
    runs = FakeRuns(
        {
            "old": {
                "workflow": "hello",
                "status": "succeeded",
                "ended_at": (now - timedelta(hours=25)).isoformat(),
            },
            "recent": {
                "workflow": "keep",
                "status": "failed",
                "ended_at": (now - timedelta(hours=25)).isoformat(),
            },
            "running": {"workflow": "hello", "status": "running"},
        }
    )
    sweeper = ScratchSweeper(tmp_path, runs, {"hello": 24, "keep": 48})  # type: ignore[arg-type]

    assert sorted(sweeper.sweep(now)) == ["old", "unknown"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recent", "running"]
