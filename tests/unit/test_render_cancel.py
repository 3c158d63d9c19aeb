"""`flowdeck show` of a run cancelled with cleanup: who, how, and each cleanup (failures shown)."""

from __future__ import annotations

from rich.console import Console

from flowdeck.cli.live import apply
from flowdeck.cli.render import cancelling, cleanup_lines, run_view, summary_lines
from flowdeck.live.frames import run_message


def cancelled_with_cleanup() -> dict[str, object]:
    return {
        "workflow": "deploy",
        "run_id": "20261121-182501-1a2b3c4d",
        "status": "cancelled",
        "duration_s": 12.0,
        "trigger": "manual",
        "cancel_reason": "revert",
        "cancel_mode": "cleanup",
        "cancelled_by": "jane@example.com",
        "cleanup_status": "failed",
        "cleanup": [
            {"step": "apply", "status": "failed", "duration_s": 1.2, "cause": "exit code 3: state locked"},
            {"step": "create", "status": "succeeded", "duration_s": 0.4},
        ],
        "steps": [{"id": "apply", "status": "succeeded", "duration_s": 2.0, "attempt": 1}],
    }


def test_cleanup_lines_show_the_mode_who_and_each_cleanup() -> None:
    lines = cleanup_lines(cancelled_with_cleanup())

    assert lines[0] == "Cancel: cleanup by jane@example.com"
    assert lines[1] == "Cleanup: failed"
    assert lines[2].startswith("  ") and "apply failed 1.2s" in lines[2]
    assert lines[2].endswith("└─ exit code 3: state locked")
    assert "create succeeded" in lines[3]


def test_show_prints_the_cleanup_after_the_reason() -> None:
    lines = summary_lines(cancelled_with_cleanup())

    assert lines.index("Cancelled: revert") < lines.index("Cleanup: failed")
    console = Console(record=True, width=120)
    console.print(run_view(cancelled_with_cleanup()))
    assert "exit code 3: state locked" in console.export_text()


def test_a_budget_cancel_has_no_cancel_lines() -> None:
    run = cancelled_with_cleanup() | {"cancel_mode": None, "cleanup_status": None, "cleanup": []}

    assert cleanup_lines(run) == []


def test_a_cancel_under_way_says_cancelling_until_the_run_reads_cancelled() -> None:
    under_way = cancelled_with_cleanup() | {
        "status": "running",
        "cancel_mode": "graceful",
        "cancel_requested_at": "2026-11-21T18:25:13+00:00",
        "cleanup_status": None,
        "cleanup": [],
    }

    lines = summary_lines(under_way)

    assert [line for line in lines if line.startswith("Cancelling… (graceful since ")] == [lines[-2]]
    assert lines[-1] == "Cancel: graceful by jane@example.com"
    assert "Cancelled: revert" not in lines
    console = Console(record=True, width=120)
    console.print(run_view(under_way, live=True))
    assert "Cancelling… (graceful since" in console.export_text()
    # Once cancelled (or never asked), it says nothing of the sort.
    assert not [line for line in summary_lines(cancelled_with_cleanup()) if line.startswith("Cancelling")]
    assert cancelling(under_way | {"status": "cancelled"}) is None
    assert cancelling(under_way | {"cancel_requested_at": None}) is None


def test_run_follow_says_cancelling_from_the_live_run_message_then_stops_saying_it() -> None:
    followed = cancelled_with_cleanup() | {"status": "running", "cancel_mode": None, "cleanup_status": None}
    item = {"status": "running", "cancel_requested_at": "2026-11-21T18:25:13+00:00", "cancel_mode": "force"}

    apply(followed, run_message("r1", item))

    assert any(line.startswith("Cancelling… (force since ") for line in summary_lines(followed))
    apply(
        followed, run_message("r1", item | {"status": "cancelled", "ended_at": "2026-11-21T18:25:14+00:00"})
    )
    assert not any(line.startswith("Cancelling") for line in summary_lines(followed))
    # A run no one cancels sends the same message as before.
    assert "cancel_requested_at" not in run_message("r1", {"status": "running"})
