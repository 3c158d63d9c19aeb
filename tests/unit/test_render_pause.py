"""How a step paused on failure, and the decisions taken on it, look in the CLI."""

from __future__ import annotations

import json
from datetime import datetime

from rich.console import Console

from flowdeck.cli.render import run_view, summary_lines
from flowdeck.live.frames import step_message
from tests.unit.test_render import run, step

DEADLINE = "2026-11-22T10:16:00+00:00"
DECIDED_AT = "2026-11-21T10:20:05+00:00"


def local(value: str) -> str:
    return datetime.fromisoformat(value).astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_waiting_step_shows_its_error_how_long_it_waited_and_its_deadline() -> None:
    paused = step(
        "apply",
        "waiting",
        1.6,
        error="StepFailed",
        cause="exit code 1: Error acquiring the state lock",
        waited_s=185.0,
        wait_deadline=DEADLINE,
        allow_skip=False,
    )

    lines = summary_lines(run("waiting", [step("plan", "succeeded", 1.2), paused, step("notify", "pending")]))

    assert lines[0].split("   ")[2] == "Status: Waiting ⏸"
    assert lines[2] == (
        f"2. apply    ⏸ 1.6s · paused 3m 05s for retry, fails at {local(DEADLINE)}"
        "  └─ StepFailed: exit code 1: Error acquiring the state lock"
    )


def test_skippable_waiting_step_offers_skip_too() -> None:
    paused = step(
        "cache", "waiting", 0.1, error="StepFailed", waited_s=2, wait_deadline=DEADLINE, allow_skip=True
    )

    assert "paused 0m 02s for retry or skip" in summary_lines(run("waiting", [paused]))[1]


def test_retried_step_shows_its_attempt_and_who_retried_it_when() -> None:
    retried = step(
        "apply",
        "succeeded",
        1.6,
        attempt=2,
        decisions=[{"decision": "retry", "by": "jane@example.com", "at": DECIDED_AT, "after_attempt": 1}],
    )

    lines = summary_lines(run("succeeded", [retried]))

    assert lines[1] == f"1. apply   ✓ 1.6s (attempt 2) · retried by jane@example.com at {local(DECIDED_AT)}"


def test_skipped_step_says_who_skipped_it() -> None:
    skipped = step("cache", "skipped", decisions=[{"decision": "skip", "by": "joe", "at": DECIDED_AT}])

    assert (
        summary_lines(run("succeeded", [skipped]))[1]
        == f"1. cache   ⊘ skipped · skipped by joe at {local(DECIDED_AT)}"
    )


def test_rich_view_shows_the_pause_too() -> None:
    paused = step("apply", "waiting", 1.6, error="StepFailed", waited_s=5, wait_deadline=DEADLINE)
    console = Console(width=200, record=True)

    console.print(run_view(run("waiting", [paused])))

    text = console.export_text()
    assert "paused 0m 05s for retry" in text
    assert "StepFailed" in text


def test_live_step_message_of_a_paused_step_carries_its_wait_but_never_its_token() -> None:
    item = {
        "status": "waiting",
        "attempt": 1,
        "error": "StepFailed",
        "wait_token": "secret-token",
        "waiting_since": "2026-11-21T10:16:00Z",
        "wait_deadline": DEADLINE,
        "allow_skip": True,
    }

    message = step_message("20261121-182501-1a2b3c4d", "apply", item)

    assert (message["wait_deadline"], message["allow_skip"]) == (DEADLINE, True)
    assert "secret-token" not in json.dumps(message)
    assert "wait_deadline" not in step_message("r", "apply", item | {"status": "running"})
