"""`--follow` says what a run waits for and how to decide, once per wait (issue 17)."""

from __future__ import annotations

import io
from typing import Any

from rich.console import Console

from flowdeck.cli.render import WaitNotices

RUN_ID = "20261206-035358-04d6101e"


def approval_step(status: str = "waiting") -> dict[str, Any]:
    return {
        "id": "approval",
        "status": status,
        "attempt": 1,
        "approval": {
            "message": "Apply 3 additions to staging?",
            "min_approvals": 2,
            "who_may_decide": "alice@example.com, bob@example.com",
            "deadline": "2026-12-06T04:03:58+00:00",
        },
    }


def told(runs: list[dict[str, Any]], width: int = 80) -> str:
    out = io.StringIO()
    notices = WaitNotices(RUN_ID, Console(file=out, width=width, force_terminal=False, color_system=None))
    for run in runs:
        notices.tell(run)
    return out.getvalue()


def test_an_approval_is_told_once_with_the_commands_that_decide_it() -> None:
    run = {"run_id": RUN_ID, "steps": [{"id": "plan", "status": "succeeded"}, approval_step()]}

    text = told([run, run, run])

    assert text.count("Approval needed") == 1
    assert "Apply 3 additions to staging?" in text
    assert "2 of: alice@example.com, bob@example.com" in text
    assert f"flowdeck approve {RUN_ID} approval" in text
    assert f"flowdeck reject {RUN_ID} approval --comment WHY" in text


def test_a_step_paused_on_failure_is_told_with_its_error_and_choices() -> None:
    paused = {
        "id": "apply",
        "status": "waiting",
        "attempt": 1,
        "waiting_since": "t1",
        "error": "StepFailed",
        "cause": "exit code 1",
        "allow_skip": True,
        "wait_deadline": "2026-12-07T03:54:18+00:00",
    }

    text = told([{"steps": [paused]}])

    assert "Paused: step apply failed (StepFailed: exit code 1)" in text
    assert f"flowdeck retry {RUN_ID} --step apply" in text
    assert f"flowdeck skip {RUN_ID} apply" in text
    assert f"flowdeck cancel {RUN_ID}" in text


def test_a_step_that_pauses_again_after_a_retry_is_told_again() -> None:
    first = {"id": "apply", "status": "waiting", "attempt": 1, "waiting_since": "t1", "error": "StepFailed"}
    again = first | {"attempt": 2, "waiting_since": "t2"}

    text = told([{"steps": [first]}, {"steps": [first | {"status": "running"}]}, {"steps": [again]}])

    assert text.count("Paused: step apply") == 2
    assert "skip" not in text  # allow_skip not set: not offered


def test_nothing_is_told_for_a_run_that_waits_for_nothing() -> None:
    assert told([{"steps": [approval_step("succeeded"), {"id": "apply", "status": "running"}]}]) == ""


def test_the_notice_never_breaks_a_run_id_at_80_columns() -> None:
    text = told([{"steps": [approval_step()]}], width=80)

    assert all(len(line) <= 80 for line in text.splitlines())
    assert text.count(RUN_ID) == 2
