"""The cleanup runner on moto: claimed once, newest step first, failures recorded, the rest still run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowdeck.config import Settings
from flowdeck.runner.cleanup import CleanupCommand, CleanupMessage, CleanupRunner
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
