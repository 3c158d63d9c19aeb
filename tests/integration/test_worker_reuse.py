"""A step a retry reuses: the worker answers its task at once, never runs it, never rewrites its record."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.step_runner import StepRunner
from flowdeck.stores.runs import RunStore

TABLE = "flowdeck-runs-test"  # as in conftest.py
OLD_RUN = "20261121-100000-aaaaaaaa"
NEW_RUN = "20261121-110000-bbbbbbbb"


class AnsweringStepFunctions:
    """Records the worker's answers."""

    def __init__(self) -> None:
        self.answers: list[tuple[str, dict[str, Any]]] = []

    def send_task_success(self, **kwargs: Any) -> None:
        self.answers.append(("success", kwargs))

    def send_task_failure(self, **kwargs: Any) -> None:
        self.answers.append(("failure", kwargs))

    def send_task_heartbeat(self, **kwargs: Any) -> None:
        pass


@pytest.fixture
def store(runs_ddb: Any) -> RunStore:
    return RunStore(TABLE, runs_ddb)


@pytest.fixture
def sfn() -> AnsweringStepFunctions:
    return AnsweringStepFunctions()


@pytest.fixture
def runner(store: RunStore, sfn: AnsweringStepFunctions, tmp_path: Path) -> Iterator[StepRunner]:
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    step_runner = StepRunner(settings, store, sfn)
    yield step_runner
    step_runner.io.shutdown(wait=True)


def message(tmp_path: Path, reuse: list[str]) -> StepMessage:
    marker = tmp_path / "ran"
    return StepMessage(
        token="token-prepare",
        run_id=NEW_RUN,
        workflow="release",
        step="prepare",
        reuse=reuse,
        spec=StepSpec(run=f"echo ran >> {marker}"),
    )


def test_a_reused_step_is_answered_without_running_or_recording(
    runner: StepRunner, store: RunStore, sfn: AnsweringStepFunctions, tmp_path: Path
) -> None:
    record = {
        "step": "prepare",
        "status": "succeeded",
        "ended_at": "2026-11-21T10:00:05Z",
        "reused_from": OLD_RUN,
    }
    store.put_reused_step(NEW_RUN, record)

    answer = runner.handle(message(tmp_path, reuse=["prepare"]))

    assert answer is None
    assert not (tmp_path / "ran").exists()
    assert [(kind, json.loads(kwargs["output"])) for kind, kwargs in sfn.answers] == [
        ("success", {"status": "reused"})
    ]
    _, steps, _ = store.get_run_items(NEW_RUN)
    assert steps["prepare"] | {"pk": None, "sk": None} == record | {"pk": None, "sk": None}


def test_a_step_not_in_the_reuse_list_runs_as_usual(
    runner: StepRunner, store: RunStore, sfn: AnsweringStepFunctions, tmp_path: Path
) -> None:
    result = runner.handle(message(tmp_path, reuse=["build"]))

    assert result is not None and result.status == "succeeded"
    assert (tmp_path / "ran").read_text() == "ran\n"
    assert [kind for kind, _ in sfn.answers] == ["success"]


def test_a_retry_copies_outputs_as_stored_and_links_both_runs(store: RunStore, runs_ddb: Any) -> None:
    reference = {"$ref": "s3://bucket/runs/release/old/prepare/.flowdeck/outputs.json"}
    store.publish_outputs(OLD_RUN, "prepare", reference)
    store.publish_outputs(OLD_RUN, "build", {"image": "x"})
    runs_ddb.put_item(TableName=TABLE, Item={"pk": {"S": OLD_RUN}, "sk": {"S": "RUN"}})

    store.copy_outputs(OLD_RUN, NEW_RUN, ["prepare"])
    store.link_retry(NEW_RUN, OLD_RUN, ["build"], ["prepare"])
    store.add_retry(OLD_RUN, NEW_RUN)
    store.add_retry(OLD_RUN, NEW_RUN)

    assert store.step_outputs(NEW_RUN) == {"prepare": reference}
    new, _, _ = store.get_run_items(NEW_RUN)
    old, _, _ = store.get_run_items(OLD_RUN)
    assert new is not None and old is not None
    assert (new["retry_of"], new["retry_from"], new["reused"]) == (OLD_RUN, ["build"], ["prepare"])
    assert old["retries"] == [NEW_RUN]


def test_a_retry_id_is_claimed_once(store: RunStore) -> None:
    assert store.claim_retry(NEW_RUN, OLD_RUN, ["build"], ["prepare"]) is True
    assert store.claim_retry(NEW_RUN, OLD_RUN, ["prepare"], []) is False
    claim = store.retry_claim(NEW_RUN)

    assert claim is not None and (claim["retry_from"], claim["reused"]) == (["build"], ["prepare"])
    store.forget_retry(NEW_RUN, ["prepare"])
    assert store.retry_claim(NEW_RUN) is None
