"""How the CLI shows a retry: reused steps and the links between a run and its retries."""

from __future__ import annotations

from typing import Any

from rich.console import Console

from flowdeck.cli.render import run_view, summary_lines

OLD = "20261121-182501-1a2b3c4d"
NEW = "20261121-183000-5e6f7a8b"


def retry_run(**extra: Any) -> dict[str, Any]:
    return {
        "workflow": "release",
        "run_id": NEW,
        "status": "succeeded",
        "duration_s": 3.0,
        "trigger": "retry",
        "retry_of": OLD,
        "retries": [],
        "steps": [
            {"id": "prepare", "status": "succeeded", "duration_s": 9.5, "attempt": 1, "reused_from": OLD},
            {"id": "build", "status": "succeeded", "duration_s": 2.0, "attempt": 1, "reused_from": None},
        ],
    } | extra


def test_a_reused_step_says_where_it_comes_from_instead_of_its_old_timing() -> None:
    lines = summary_lines(retry_run())

    assert lines[1:3] == [f"1. prepare   ✓ ↺ reused from {OLD}", "2. build     ✓ 2.0s"]


def test_a_retry_names_the_run_it_retries_and_a_retried_run_its_retries() -> None:
    assert summary_lines(retry_run())[-1] == f"Retry of: {OLD}"
    retried = retry_run(
        run_id=OLD, trigger="manual", retry_of=None, retries=[NEW, "20261121-190000-00000000"]
    )
    assert summary_lines(retried)[-1] == f"Retried by: {NEW}, 20261121-190000-00000000"


def test_a_run_without_retries_shows_no_link_lines() -> None:
    plain = retry_run(retry_of=None, trigger="manual")

    assert not [line for line in summary_lines(plain) if line.startswith(("Retry of", "Retried by"))]


def test_the_rich_view_shows_the_same_marks() -> None:
    console = Console(width=120, record=True)

    console.print(run_view(retry_run()))

    text = console.export_text()
    assert f"↺ reused from {OLD}" in text
    assert f"Retry of: {OLD}" in text
