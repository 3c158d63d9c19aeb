"""What the steps an ended run never reached read, and how retry planning reads them."""

from __future__ import annotations

import pytest

from flowdeck.control.retry import plan_retry
from flowdeck.definition import parse_workflow
from flowdeck.live.frames import step_message
from flowdeck.runs.unrun import ended_status, not_run_reason, planning_status, unreached

SEQUENCE = parse_workflow(
    "name: release\nsteps:\n  - {id: prepare, run: echo}\n  - {id: build, run: echo}\n"
    "  - {id: publish, run: echo}\n",
    "release.yaml",
)


@pytest.mark.parametrize(
    ("run_status", "failed", "status", "reason"),
    [
        ("failed", ["deploy"], "skipped", "the run failed at deploy"),
        ("failed", ["lint", "test"], "skipped", "the run failed at lint, test"),
        ("failed", [], "skipped", "the run failed"),  # its start failed, or a deadline ended it
        ("timed_out", [], "skipped", "the run timed out"),
        ("cancelled", [], "cancelled", "the run was cancelled"),
        ("succeeded", [], "skipped", "the run ended first"),
    ],
)
def test_each_way_a_run_ends_names_what_its_unreached_steps_read_and_why(
    run_status: str, failed: list[str], status: str, reason: str
) -> None:
    assert (ended_status(run_status), not_run_reason(run_status, failed)) == (status, reason)


def test_unreached_steps_are_the_pending_ones_and_those_without_a_record() -> None:
    statuses = {"a": "succeeded", "b": "failed", "c": "pending", "e": "skipped", "f": None}

    assert unreached(["a", "b", "c", "d", "e", "f"], statuses) == ["c", "d", "f"]


def test_a_retry_of_a_timed_out_run_starts_at_its_first_step_that_never_ran() -> None:
    items = {
        "prepare": {"status": "succeeded"},
        "build": {"status": "skipped", "not_run": "the run timed out"},
        "publish": {"status": "skipped", "not_run": "the run timed out"},
    }

    plan = plan_retry(SEQUENCE, "timed_out", {s: planning_status(i) for s, i in items.items()}, None)

    assert (plan.start, plan.reused) == (["build"], ["prepare"])


def test_a_step_its_condition_skipped_is_still_reused() -> None:
    items = {"prepare": {"status": "succeeded"}, "build": {"status": "skipped"}, "publish": {}}

    statuses = {s: planning_status(i) for s, i in items.items()}

    assert statuses == {"prepare": "succeeded", "build": "skipped", "publish": "pending"}
    assert plan_retry(SEQUENCE, "succeeded", statuses, "publish").reused == ["prepare", "build"]


def test_live_step_frames_carry_why_a_step_never_ran() -> None:
    not_run = step_message("r1", "notify", {"status": "skipped", "not_run": "the run failed at deploy"})
    ran = step_message("r1", "build", {"status": "succeeded"})

    assert (not_run["status"], not_run["not_run"]) == ("skipped", "the run failed at deploy")
    assert "not_run" not in ran
