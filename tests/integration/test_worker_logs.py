"""The worker stores a step's output in the logs table, every line in order, before the step's end."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck.config import Settings
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.step_runner import StepRunner
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import create_logs_table_kwargs, create_table_kwargs

TABLE = "flowdeck-runs-test"
LOGS_TABLE = "flowdeck-logs-test"
RUN_ID = "r1"

PRINTS_BOTH = (
    "import sys\n"
    "for i in range(3000):\n"
    "    print(f'out {i}')\n"
    "    if i % 100 == 0:\n"
    "        print(f'err {i}', file=sys.stderr)\n"
    "print()\n"
    "sys.stdout.buffer.write(b'bin \\xff\\n')\n"
)


class RecordingStepFunctions:
    """Answers like Step Functions and notes what the logs table held at the moment of the answer."""

    def __init__(self, logs: LogStore, runs: RunStore) -> None:
        self.logs = logs
        self.runs = runs
        self.seen: dict[str, Any] = {}

    def send_task_success(self, **kwargs: Any) -> None:
        self.seen = {
            "answer": "success",
            "lines": list(self.logs.search(RUN_ID)),
            "step_status": self.runs.get_run_items(RUN_ID)[1]["build"]["status"],
        }

    def send_task_failure(self, **kwargs: Any) -> None:
        self.seen = {"answer": "failure", "lines": list(self.logs.search(RUN_ID))}

    def send_task_heartbeat(self, **kwargs: Any) -> None:
        pass


@pytest.fixture
def stores() -> Iterator[tuple[RunStore, LogStore]]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_table_kwargs(TABLE))
        ddb.create_table(**create_logs_table_kwargs(LOGS_TABLE))
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="flowdeck-artifacts")
        yield RunStore(TABLE, ddb), LogStore(LOGS_TABLE, ddb)


def message(**spec: Any) -> StepMessage:
    return StepMessage(
        token="task-token-1",
        run_id=RUN_ID,
        workflow="deploy",
        step="build",
        retention_hours=2,
        spec=StepSpec.model_validate({"kind": "run", "timeout": 60} | spec),
    )


def test_step_output_on_both_streams_is_stored_in_order_before_the_end_is_recorded(stores, tmp_path: Path):
    runs, logs = stores
    sfn = RecordingStepFunctions(logs, runs)
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    runner = StepRunner(settings, runs, sfn, logs=logs)
    try:
        result = runner.handle(message(command=[sys.executable, "-c", PRINTS_BOTH]))
    finally:
        runner.io.shutdown(wait=True)
    assert result is not None
    assert result.status == "succeeded"
    # When Step Functions heard of the end, every line was already stored
    assert sfn.seen["answer"] == "success"
    stored = sfn.seen["lines"]
    out = [line["text"] for line in stored if line["stream"] == "stdout"]
    err = [line["text"] for line in stored if line["stream"] == "stderr"]
    assert out == [f"out {i}" for i in range(3000)] + ["", "bin \\xff"]
    assert err == [f"err {i}" for i in range(0, 3000, 100)]
    assert {line["step"] for line in stored} == {"build"}
    batches = logs.batches_after(RUN_ID, 0)
    assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
    assert {b["attempt"] for b in batches} == {1}


def test_a_failing_step_stores_its_errors_too(stores, tmp_path: Path):
    runs, logs = stores
    sfn = RecordingStepFunctions(logs, runs)
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    runner = StepRunner(settings, runs, sfn, logs=logs)
    try:
        result = runner.handle(message(run="echo starting; echo broken >&2; exit 3"))
    finally:
        runner.io.shutdown(wait=True)
    assert result is not None
    assert (result.status, result.cause) == ("failed", "exit code 3: broken")
    # Two pipes: order holds within each stream, not across them
    assert sorted((line["stream"], line["text"]) for line in sfn.seen["lines"]) == [
        ("stderr", "broken"),
        ("stdout", "starting"),
    ]
