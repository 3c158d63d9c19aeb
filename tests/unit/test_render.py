"""The plain-text run summary the CLI prints (and its rich twin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from rich.console import Console

from flowdeck.cli.render import run_duration, run_view, summary_lines


def step(
    step_id: str, status: str, duration_s: float | None = None, attempt: int = 1, **extra: Any
) -> dict[str, Any]:
    return {"id": step_id, "status": status, "duration_s": duration_s, "attempt": attempt} | extra


def run(status: str, steps: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
    return {
        "workflow": "production-deploy",
        "run_id": "20261121-182501-1a2b3c4d",
        "status": status,
        "duration_s": 7.2,
        "trigger": "manual",
        "steps": steps,
    } | extra


def test_succeeded_run_summary() -> None:
    succeeded = run(
        "succeeded",
        [step("plan", "succeeded", 1.2, summary="3 to add, 1 to change"), step("apply", "succeeded", 2.0)],
    )

    assert summary_lines(succeeded) == [
        "Workflow: production-deploy   Run ID: 20261121-182501-1a2b3c4d   Status: Succeeded ✓   "
        "Duration: 0m 07s   Trigger: manual",
        "1. plan    ✓ 1.2s  └─ 3 to add, 1 to change",
        "2. apply   ✓ 2.0s",
    ]


def test_failed_run_shows_the_step_error_and_what_never_ran() -> None:
    failed = run(
        "failed",
        [
            step("plan", "succeeded", 1.2),
            step("apply", "failed", 0.4, error="exit code 2\nTraceback (most recent call last): ..."),
            step("health", "skipped", attempt=0, not_run="the run failed at apply"),
        ],
        error="StepFailed",
    )

    lines = summary_lines(failed)

    assert "Status: Failed ✗" in lines[0]
    assert lines[2] == "2. apply    ✗ 400ms  └─ exit code 2 ⏎ Traceback (most recent call last): ..."
    assert lines[3] == "3. health   ⊘ skipped  └─ not run: the run failed at apply"
    assert len(lines) == 4, "the step already tells the error"


def test_retried_step_shows_its_attempt() -> None:
    retried = run("succeeded", [step("test", "succeeded", 2.1, attempt=3)])

    assert summary_lines(retried)[1] == "1. test   ✓ 2.1s (attempt 3)"


def test_skipped_step_is_marked_skipped() -> None:
    skipped = run("succeeded", [step("apply", "succeeded", 2.0), step("health", "skipped", attempt=0)])

    assert summary_lines(skipped)[2] == "2. health   ⊘ skipped"


def test_run_error_without_a_failed_step_is_its_own_line() -> None:
    timed_out = run(
        "timed_out", [step("wait", "cancelled", 60.0)], error="States.Timeout", error_cause="run took 1h"
    )

    lines = summary_lines(timed_out)

    assert "Status: Timed out ✗" in lines[0]
    assert lines[-1] == "Error: States.Timeout: run took 1h"


def test_step_numbers_align_past_nine_steps() -> None:
    many = run("running", [step(f"s{i}", "pending", attempt=0) for i in range(10)])

    lines = summary_lines(many)

    assert lines[1].startswith("1.  s0 ")
    assert lines[10].startswith("10. s9 ")


@pytest.mark.parametrize(
    ("seconds", "shown"), [(None, "-"), (7.2, "0m 07s"), (754, "12m 34s"), (3723, "1h 02m 03s")]
)
def test_run_duration(seconds: float | None, shown: str) -> None:
    assert run_duration(seconds) == shown


def test_rich_view_shows_the_same_facts() -> None:
    console = Console(record=True, width=200, color_system=None)
    failed = run(
        "failed",
        [step("plan", "succeeded", 1.2, summary="3 to add"), step("apply", "failed", 0.4, error="boom")],
    )

    console.print(run_view(failed))
    text = console.export_text()

    for fact in ("production-deploy", "Failed ✗", "0m 07s", "plan", "✓", "└─ 3 to add", "✗", "└─ boom"):
        assert fact in text


def test_a_running_step_duration_keeps_growing_past_its_first_reading() -> None:
    # --follow keeps the view of the step's first message (duration 0.1 s); the step began 5 s ago.
    began = (datetime.now(UTC) - timedelta(seconds=5)).isoformat()
    going = run(
        "running",
        [step("plan", "running", 0.1, started_at=began), step("done", "succeeded", 0.1, started_at=began)],
        started_at=began,
        duration_s=0.1,
    )

    header, plan, done = summary_lines(going)

    assert "Duration: 0m 05s" in header
    assert " 5." in plan and "100ms" not in plan
    # A step that ended keeps its recorded duration.
    assert "100ms" in done


def test_money_renders_from_decimal_strings() -> None:
    priced = run("succeeded", [step("plan", "succeeded", 1.0, cost_usd="0.000003")], cost_usd="0.012345")
    unpriced = run("running", [], cost_usd="0")

    assert summary_lines(priced)[0].endswith("Cost: $0.01")
    assert "$0.000003" in summary_lines(priced)[1]
    assert "Cost" not in summary_lines(unpriced)[0]
