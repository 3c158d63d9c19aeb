"""The actions a run view offers: only what the endpoints would accept now."""

from __future__ import annotations

import pytest

from flowdeck.runs.actions import run_actions, step_actions


@pytest.mark.parametrize("status", ["queued", "running", "waiting"])
def test_a_run_that_may_still_change_offers_the_three_cancels(status):
    assert run_actions(status) == ["cancel", "cancel_cleanup", "force_cancel"]


@pytest.mark.parametrize("status", ["succeeded", "failed", "cancelled", "timed_out"])
def test_a_finished_run_offers_retry_only(status):
    assert run_actions(status) == ["retry"]


def test_a_waiting_approval_offers_approve_and_reject():
    step = {"status": "waiting", "approval": {"message": "ok?"}}
    assert step_actions("waiting", step) == ["approve", "reject"]


def test_a_step_paused_on_failure_offers_retry_and_skip_only_when_allowed():
    assert step_actions("waiting", {"status": "waiting", "allow_skip": True}) == ["retry_step", "skip"]
    assert step_actions("waiting", {"status": "waiting", "allow_skip": False}) == ["retry_step"]


@pytest.mark.parametrize("status", ["pending", "running", "succeeded", "failed", "skipped"])
def test_steps_of_a_running_run_that_are_not_waiting_offer_nothing(status):
    assert step_actions("running", {"status": status}) == []


def test_a_finished_run_retries_its_failed_step_or_from_any_step():
    assert step_actions("failed", {"status": "failed"}) == ["retry_step", "retry_from_here"]
    assert step_actions("failed", {"status": "succeeded"}) == ["retry_from_here"]
    assert step_actions("succeeded", {"status": "succeeded"}) == ["retry_from_here"]


def test_a_cancel_under_way_leaves_only_escalating_to_force() -> None:
    assert run_actions("running", "graceful") == ["force_cancel"]
    assert run_actions("running", "cleanup") == ["force_cancel"]
    assert run_actions("running", "force") == []
