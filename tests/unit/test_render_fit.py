"""Output that fits a terminal: 80 columns, not a TTY (issue 17)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from flowdeck.cli.render import header_lines, hidden_columns, run_view, runs_table, summary_lines

RUN_ID = "20261206-034709-bd3fc83e"


def printed(renderable: Any, width: int = 80) -> str:
    out = io.StringIO()
    Console(file=out, width=width, force_terminal=False, color_system=None).print(renderable)
    return out.getvalue()


def row(run_id: str, workflow: str = "production-deploy", status: str = "succeeded") -> dict[str, Any]:
    return {
        "run_id": run_id,
        "workflow": workflow,
        "trigger": "schedule",
        "status": status,
        "duration_s": 3723.0,
        "cost_usd": "0.000123",
        "started_by": "someone-with-a-long-name@example.com",
        "started_at": "2026-12-06T03:47:09+00:00",
    }


def test_runs_at_80_columns_never_cut_a_run_id() -> None:
    runs = [row(RUN_ID), row("20261206-034704-49e01ce8", status="timed_out")]

    table = runs_table(runs, 80)
    text = printed(table)

    for run in runs:
        assert run["run_id"] in text
    assert "…" not in text
    assert max(len(line) for line in text.splitlines()) <= 80
    assert hidden_columns(table) == ["Trigger", "Duration", "Cost", "Started by"]


def test_runs_on_a_wide_terminal_show_every_column() -> None:
    table = runs_table([row(RUN_ID)], 200)

    assert hidden_columns(table) == []
    assert "someone-with-a-long-name@example.com" in printed(table, 200)


def test_the_run_header_breaks_between_parts_never_inside_a_run_id() -> None:
    run = {
        "workflow": "production-deploy",
        "run_id": RUN_ID,
        "status": "failed",
        "duration_s": 2,
        "trigger": "webhook",
        "cost_usd": "0.05",
    }

    lines = header_lines(run, 80)

    assert len(lines) == 2
    assert all(len(line) <= 80 for line in lines)
    assert f"Run ID: {RUN_ID}" in lines[0]
    assert lines[1] == "Status: Failed ✗   Duration: 0m 02s   Trigger: webhook   Cost: $0.05"
    assert f"Run ID: {RUN_ID}" in printed(run_view(run | {"steps": []}))


def test_show_keeps_a_long_error_cause_wrapped_not_dropped() -> None:
    cause = "step sleepy ran past its timeout of 1s; " + "the process kept the port open " * 4 + "END"
    run = {
        "workflow": "slow",
        "run_id": RUN_ID,
        "status": "failed",
        "trigger": "manual",
        "steps": [
            {
                "id": "sleepy",
                "status": "failed",
                "duration_s": 1.1,
                "attempt": 1,
                "error": "StepTimeout",
                "cause": cause,
            }
        ],
    }

    text = printed(run_view(run))

    assert "StepTimeout: step sleepy" in text
    assert "END" in text  # the cause's last word: wrapped onto later lines, not cut
    assert "END" in summary_lines(run)[1]


def test_show_lists_every_attempt_of_a_retried_step() -> None:
    attempts = [
        {
            "attempt": 1,
            "status": "failed",
            "error": "StepFailed",
            "cause": "exit code 7",
            "started_at": "2026-12-06T03:46:59+00:00",
            "ended_at": "2026-12-06T03:47:00+00:00",
        },
        {
            "attempt": 2,
            "status": "succeeded",
            "started_at": "2026-12-06T03:47:01+00:00",
            "ended_at": "2026-12-06T03:47:03+00:00",
        },
    ]
    run = {
        "workflow": "flaky",
        "run_id": RUN_ID,
        "status": "succeeded",
        "trigger": "manual",
        "steps": [
            {"id": "wobble", "status": "succeeded", "duration_s": 2, "attempt": 2, "attempts": attempts}
        ],
    }

    lines = summary_lines(run)

    assert lines[2:] == ["   ↳ attempt 1 ✗ 1.0s  └─ StepFailed: exit code 7", "   ↳ attempt 2 ✓ 2.0s"]
    text = printed(run_view(run))
    assert "attempt 1 ✗ 1.0s" in text and "StepFailed: exit code 7" in text and "attempt 2 ✓" in text
