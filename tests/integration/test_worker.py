"""StepRunner.handle end to end: a real RunStore on moto, real step processes, a recording Step Functions."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.step_runner import StepRunner
from flowdeck.stores.runs import RunStore

TABLE = "flowdeck-runs-test"  # as in conftest.py
RUN_ID = "r1"
TOKEN = "task-token-1"


class FakeStepFunctions:
    """Records the worker's answers to the state machine (and a budget guard's StopExecution)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def send_task_success(self, **kwargs: Any) -> None:
        self.calls.append(("success", kwargs))

    def send_task_failure(self, **kwargs: Any) -> None:
        self.calls.append(("failure", kwargs))

    def send_task_heartbeat(self, **kwargs: Any) -> None:
        self.calls.append(("heartbeat", kwargs))

    def stop_execution(self, **kwargs: Any) -> None:
        self.calls.append(("stop", kwargs))

    def answers(self) -> list[tuple[str, dict[str, Any]]]:
        return [(kind, kwargs) for kind, kwargs in self.calls if kind != "heartbeat"]


class Lines:
    """A LineSink keeping what the step printed."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        self.lines.append((stream, text))


@pytest.fixture
def sfn() -> FakeStepFunctions:
    return FakeStepFunctions()


@pytest.fixture
def store(runs_ddb: Any) -> RunStore:
    return RunStore(TABLE, runs_ddb)


@pytest.fixture
def runner(store: RunStore, sfn: FakeStepFunctions, tmp_path: Path) -> Iterator[StepRunner]:
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    step_runner = StepRunner(settings, store, sfn)
    yield step_runner
    step_runner.io.shutdown(wait=True)


def message(
    step: str = "build", retry_count: int = 0, heartbeat_seconds: int = 30, **spec: Any
) -> StepMessage:
    """A step message as the state machine sends it; `spec` as statemachines.run_step.step_spec builds it."""
    return StepMessage(
        token=TOKEN,
        run_id=RUN_ID,
        workflow="deploy",
        step=step,
        retry_count=retry_count,
        heartbeat_seconds=heartbeat_seconds,
        inputs={"environment": "staging", "replicas": 2},
        spec=StepSpec.model_validate(
            {
                "kind": "run",
                "env": {},
                "timeout": 60,
                "max_attempts": 1,
                "on_failure": "fail",
                "resources": {},
            }
            | spec
        ),
    )


def step_record(store: RunStore, step: str = "build") -> dict[str, Any]:
    return store.get_run_items(RUN_ID)[1][step]


def test_succeeding_command_step_publishes_its_outputs_and_answers_success(runner, store, sfn):
    write = 'import json, os; json.dump({"tag": "v1", "count": 2}, open(os.environ["FLOWDECK_OUTPUTS"], "w"))'
    step = message(command=[sys.executable, "-c", f"{write}; print('built')"])

    result = runner.handle(step, Lines())

    assert result is not None and result.status == "succeeded"
    assert store.step_outputs(RUN_ID) == {"build": {"tag": "v1", "count": 2}}
    assert sfn.answers() == [
        (
            "success",
            {
                "taskToken": TOKEN,
                "output": json.dumps({"outputs": {"tag": "v1", "count": 2}, "status": "succeeded"}),
            },
        )
    ]
    record = step_record(store)
    assert (record["status"], record["exit_code"], record["attempt"]) == ("succeeded", 0, 1)
    assert record["attempt#1"]["status"] == "succeeded"


def test_the_same_message_handled_twice_runs_the_step_once(runner, sfn, tmp_path):
    marker = tmp_path / "ran"
    step = message(run=f"echo once >> {marker}")

    first = runner.handle(step, Lines())
    second = runner.handle(step, Lines())

    assert first is not None and first.status == "succeeded"
    assert second is None
    assert marker.read_text() == "once\n"
    assert [kind for kind, _ in sfn.answers()] == ["success"]


def test_failing_step_answers_step_failed_with_its_last_stderr_line(runner, store, sfn):
    step = message(run="echo starting; echo first >&2; echo 'no credentials' >&2; echo >&2; exit 3")

    result = runner.handle(step, Lines())

    assert result is not None and (result.status, result.exit_code) == ("failed", 3)
    assert sfn.answers() == [
        ("failure", {"taskToken": TOKEN, "error": "StepFailed", "cause": "exit code 3: no credentials"})
    ]
    record = step_record(store)
    assert (record["status"], record["error"], record["cause"]) == (
        "failed",
        "StepFailed",
        "exit code 3: no credentials",
    )
    assert store.step_outputs(RUN_ID) == {}


def test_failed_attempt_with_retries_left_leaves_the_step_pending(runner, store, sfn):
    step = message(run="exit 1", max_attempts=2)

    runner.handle(step, Lines())

    record = step_record(store)
    assert (record["status"], record["attempt#1"]["status"]) == ("pending", "failed")
    assert sfn.answers() == [("failure", {"taskToken": TOKEN, "error": "StepFailed", "cause": "exit code 1"})]


def test_outputs_file_that_is_not_a_json_object_fails_the_step(runner, store, sfn):
    step = message(run='echo "[1, 2]" > "$FLOWDECK_OUTPUTS"')

    result = runner.handle(step, Lines())

    assert result is not None and (result.status, result.error) == ("failed", "InvalidOutputs")
    [(kind, answer)] = sfn.answers()
    assert (kind, answer["error"]) == ("failure", "InvalidOutputs")
    assert answer["cause"] == "FLOWDECK_OUTPUTS: FLOWDECK_OUTPUTS must hold a JSON object"
    assert store.step_outputs(RUN_ID) == {}


def test_false_condition_skips_the_step_without_running_it(runner, store, sfn, tmp_path):
    store.publish_outputs(RUN_ID, "plan", {"changes": 0})
    marker = tmp_path / "ran"
    step = message(step="apply", run=f"touch {marker}", **{"if": "steps.plan.outputs.changes > 0"})

    result = runner.handle(step, Lines())

    assert result is not None and result.status == "skipped"
    assert not marker.exists()
    assert sfn.answers() == [
        ("success", {"taskToken": TOKEN, "output": json.dumps({"outputs": {}, "status": "skipped"})})
    ]
    assert step_record(store, "apply")["status"] == "skipped"


def test_step_past_its_timeout_fails_with_step_timeout(runner, store, sfn):
    step = message(run="sleep 10", timeout=1, heartbeat_seconds=1)

    result = runner.handle(step, Lines())

    assert result is not None and (result.status, result.error) == ("failed", "StepTimeout")
    assert sfn.answers() == [
        (
            "failure",
            {"taskToken": TOKEN, "error": "StepTimeout", "cause": "step build ran past its timeout of 1s"},
        )
    ]
    # The token was kept alive while the step ran.
    assert ("heartbeat", {"taskToken": TOKEN}) in sfn.calls
    assert step_record(store)["error"] == "StepTimeout"


def test_step_environment_has_the_run_and_earlier_outputs_but_not_worker_settings(
    runner, store, sfn, tmp_path, monkeypatch
):
    # The worker's own configuration, as it would be set on a real worker.
    monkeypatch.setenv("FLOWDECK_RUNS_TABLE", TABLE)
    monkeypatch.setenv("FLOWDECK_STEPS_QUEUE_URL", "https://sqs.example/steps")
    monkeypatch.setenv("FLOWDECK_AWS_ENDPOINT_URL", "http://127.0.0.1:1")
    store.publish_outputs(RUN_ID, "make-image", {"tag": "v1"})
    dump = tmp_path / "env.json"
    step = message(
        step="deploy-app",
        command=[
            sys.executable,
            "-c",
            f"import json, os; json.dump(dict(os.environ), open({str(dump)!r}, 'w'))",
        ],
        env={"REGION": "eu-west-1"},
    )

    result = runner.handle(step, Lines())

    assert result is not None and result.status == "succeeded"
    env = json.loads(dump.read_text())
    assert env["FLOWDECK_RUN_ID"] == RUN_ID
    assert env["FLOWDECK_STEP_ID"] == "deploy-app"
    assert json.loads(env["FLOWDECK_INPUTS"]) == {"environment": "staging", "replicas": 2}
    assert json.loads(env["FLOWDECK_STEP_MAKE_IMAGE_OUTPUTS"]) == {"tag": "v1"}
    assert env["REGION"] == "eu-west-1"
    assert {name for name in env if name.startswith("FLOWDECK_")} == {
        "FLOWDECK_RUN_ID",
        "FLOWDECK_WORKFLOW",
        "FLOWDECK_STEP_ID",
        "FLOWDECK_ATTEMPT",
        "FLOWDECK_INPUTS",
        "FLOWDECK_OUTPUTS",
        "FLOWDECK_USAGE",
        "FLOWDECK_ARTIFACTS_DIR",
        "FLOWDECK_WORK_DIR",
        "FLOWDECK_STEP_MAKE_IMAGE_OUTPUTS",
        "FLOWDECK_STEP_MAKE_IMAGE_OUTPUTS_FILE",
    }


def test_a_step_of_a_run_cancelled_before_it_was_taken_never_starts_its_process(
    runner, store, sfn, runs_ddb, tmp_path
):
    # The start's transaction sees the cancel; the runner reads it before any process starts.
    runs_ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": RUN_ID},
            "sk": {"S": "RUN"},
            "status": {"S": "cancelling"},
            "cancel_requested_at": {"S": "2026-12-06T10:00:00Z"},
            "cancel_mode": {"S": "graceful"},
            "cancel_reason": {"S": "cancelled by ana"},
        },
    )
    marker = tmp_path / "ran"

    result = runner.handle(message(run=f"touch {marker}"), Lines())

    assert result is not None and (result.status, result.cause) == ("cancelled", "cancelled by ana")
    assert not marker.exists()
    assert step_record(store)["status"] == "cancelled"
    assert [kind for kind, _ in sfn.answers()] == ["failure"]


def test_a_step_just_sent_beats_when_its_interval_ends_not_at_once(runner, sfn):
    # waited=0: the token's heartbeat clock just started; a beat now would be a request for nothing.
    step = message(heartbeat_seconds=30, command=[sys.executable, "-c", "pass"])

    result = runner.handle(step, Lines(), waited=0.0)

    assert result is not None and result.status == "succeeded"
    assert [kind for kind, _ in sfn.calls] == ["success"]


def test_a_step_that_waited_most_of_its_interval_beats_once_the_rest_has_passed(runner, sfn):
    # Every 10 s (heartbeat 30 s / 3); 9.8 s of it spent in the queue: the first beat is due in 0.2 s.
    step = message(heartbeat_seconds=30, command=[sys.executable, "-c", "import time; time.sleep(1)"])

    result = runner.handle(step, Lines(), waited=9.8)

    assert result is not None and result.status == "succeeded"
    assert [kind for kind, _ in sfn.calls] == ["heartbeat", "success"]
