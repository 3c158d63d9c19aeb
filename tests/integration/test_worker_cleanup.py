"""The cleanup runner on moto: claimed once, newest step first, failures recorded, the rest still run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.control.cancelling import settle
from flowdeck.runner import cleanup
from flowdeck.runner.cleanup import CLEANUP_STALE_SECONDS, CleanupCommand, CleanupMessage, CleanupRunner
from flowdeck.stores.runs import RunStore
from tests.integration.conftest import TABLE


def seed(ddb: Any, run_id: str) -> None:
    ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": run_id},
            "sk": {"S": "RUN"},
            "status": {"S": "cancelled"},
            "cleanup_status": {"S": "pending"},
            "inputs_json": {"S": '{"target": "staging"}'},
        },
    )
    for step, status, ended in [
        ("create", "succeeded", "2026-11-21T10:00:01+00:00"),
        ("apply", "succeeded", "2026-11-21T10:00:05+00:00"),
        ("verify", "cancelled", "2026-11-21T10:00:09+00:00"),
    ]:
        ddb.put_item(
            TableName=TABLE,
            Item={
                "pk": {"S": run_id},
                "sk": {"S": f"STEP#{step}"},
                "status": {"S": status},
                "ended_at": {"S": ended},
            },
        )


def message(run_id: str, order: Path) -> CleanupMessage:
    def command(step: str, extra: str = "") -> CleanupCommand:
        script = f'echo "$FLOWDECK_CLEANUP_OF $FLOWDECK_INPUTS" >> {order}; echo undo {step}{extra}'
        return CleanupCommand(step=step, run=script, timeout=60)

    return CleanupMessage(
        type="cleanup",
        run_id=run_id,
        workflow="deploy",
        steps=[command("create"), command("apply", "; exit 4"), command("verify")],
        settle_seconds=0,
    )


def test_a_cleanup_delivered_twice_runs_once_newest_first(runs_ddb: Any, tmp_path: Path) -> None:
    seed(runs_ddb, "r1")
    order = tmp_path / "order"
    runs = RunStore(TABLE, runs_ddb)
    runner = CleanupRunner(Settings(scratch_dir=tmp_path / "scratch", workspace=tmp_path), runs)
    lines: list[tuple[str, str]] = []

    first = runner.handle(message("r1", order), sink=lambda stream, text: lines.append((stream, text)))
    second = runner.handle(message("r1", order), sink=lambda stream, text: lines.append((stream, text)))

    assert (first, second) == ("failed", None)
    # apply ended last: undone first; its failure did not stop create's; verify never succeeded.
    assert order.read_text().splitlines() == ['apply {"target": "staging"}', 'create {"target": "staging"}']
    assert lines == [("stdout", "undo apply"), ("stdout", "undo create")]
    run = runs.get_run_items("r1")[0] or {}
    assert run["cleanup_status"] == "failed"
    entries = run["cleanup"]
    assert [(e["step"], e["status"], e["exit_code"]) for e in entries] == [
        ("apply", "failed", 4),
        ("create", "succeeded", 0),
    ]
    assert entries[0]["log_step"] == "cleanup:apply"
    assert entries[0]["cause"] == "exit code 4"


def test_a_run_not_waiting_for_cleanup_is_left_alone(runs_ddb: Any, tmp_path: Path) -> None:
    seed(runs_ddb, "r2")
    runs_ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "r2"}, "sk": {"S": "RUN"}},
        UpdateExpression="REMOVE cleanup_status",
    )
    runner = CleanupRunner(
        Settings(scratch_dir=tmp_path / "scratch", workspace=tmp_path), RunStore(TABLE, runs_ddb)
    )

    assert runner.handle(message("r2", tmp_path / "order")) is None
    assert not (tmp_path / "order").exists()


class RecordingLease:
    """A queue message's lease that records what the runner did with it."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def extend(self, seconds: int) -> None:
        self.calls.append(f"extend {seconds}")

    def delete(self) -> None:
        self.calls.append("delete")


def claimed_by_a_worker(ddb: Any, run_id: str, silent_for: float) -> None:
    """The cleanup as a worker left it mid-way: apply's cleanup running, create's not started yet."""
    beat = (datetime.now(UTC) - timedelta(seconds=silent_for)).isoformat()
    entries = [
        {"M": {"step": {"S": "apply"}, "log_step": {"S": "cleanup:apply"}, "status": {"S": "running"}}},
        {"M": {"step": {"S": "create"}, "log_step": {"S": "cleanup:create"}, "status": {"S": "pending"}}},
    ]
    ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}},
        UpdateExpression="SET #status = :running, cleanup_status = :running, cleanup_heartbeat_at = :beat, "
        "cleanup = :entries, cancel_requested_at = :beat, cancel_mode = :cleanup",
        ExpressionAttributeNames={"#status": "status"},
        ExpressionAttributeValues={
            ":running": {"S": "running"},
            ":beat": {"S": beat},
            ":entries": {"L": entries},
            ":cleanup": {"S": "cleanup"},
        },
    )


def test_a_cleanup_whose_worker_died_is_failed_worker_lost_when_its_message_comes_back(
    runs_ddb: Any, tmp_path: Path
) -> None:
    seed(runs_ddb, "r3")
    claimed_by_a_worker(runs_ddb, "r3", silent_for=CLEANUP_STALE_SECONDS + 5)
    runs = RunStore(TABLE, runs_ddb)
    runner = CleanupRunner(Settings(scratch_dir=tmp_path / "scratch", workspace=tmp_path), runs)
    lease = RecordingLease()

    assert runner.handle(message("r3", tmp_path / "order"), lease=lease) is None

    assert not (tmp_path / "order").exists(), "a lost cleanup is not run again"
    assert lease.calls == ["delete"]
    run = runs.get_run_items("r3")[0] or {}
    assert run["cleanup_status"] == "failed"
    assert run["cleanup_error"].startswith("WorkerLost: the worker running the cleanup was lost")
    assert [(e["step"], e["status"], e["error"]) for e in run["cleanup"]] == [
        ("apply", "failed", "WorkerLost"),
        ("create", "failed", "WorkerLost"),
    ]
    # The lost worker, back late, cannot overwrite that record.
    runner.update_run("r3", "SET cleanup_status = :done", {}, {":done": {"S": "succeeded"}})
    assert (runs.get_run_items("r3")[0] or {})["cleanup_status"] == "failed"
    # Nothing of the run runs any more: its cancel settles, with the cleanup's results.
    assert settle(runs, "r3") is True
    assert (runs.get_run_items("r3")[0] or {})["status"] == "cancelled"


def test_a_cleanup_whose_worker_still_beats_is_left_to_it(runs_ddb: Any, tmp_path: Path) -> None:
    seed(runs_ddb, "r4")
    claimed_by_a_worker(runs_ddb, "r4", silent_for=1)
    runs = RunStore(TABLE, runs_ddb)
    runner = CleanupRunner(Settings(scratch_dir=tmp_path / "scratch", workspace=tmp_path), runs)
    lease = RecordingLease()

    assert runner.handle(message("r4", tmp_path / "order"), lease=lease) is None

    # The message is kept (it comes back if that worker dies after all); the record is untouched.
    assert lease.calls == []
    run = runs.get_run_items("r4")[0] or {}
    assert (run["cleanup_status"], run["cleanup"][0]["status"]) == ("running", "running")


def test_a_cleanup_beats_while_it_runs_and_deletes_its_message_when_over(
    runs_ddb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cleanup, "CLEANUP_HEARTBEAT_SECONDS", 0.05)
    seed(runs_ddb, "r5")
    runs = RunStore(TABLE, runs_ddb)
    runner = CleanupRunner(Settings(scratch_dir=tmp_path / "scratch", workspace=tmp_path), runs)
    lease = RecordingLease()
    slow = message("r5", tmp_path / "order")
    slow.steps[0].run = "sleep 0.5"

    assert runner.handle(slow, lease=lease) == "failed"

    assert lease.calls[-1] == "delete"
    assert f"extend {cleanup.CLEANUP_VISIBILITY_SECONDS}" in lease.calls
    run = runs.get_run_items("r5")[0] or {}
    assert run["cleanup_heartbeat_at"] > run["cleanup_started_at"]
