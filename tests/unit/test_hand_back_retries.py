"""Which failed attempts run again: the hand-back retrier and the step's own retries count apart."""

from __future__ import annotations

from typing import Any

import pytest

from flowdeck.constants import WORKER_STOPPED
from flowdeck.messages import StepMessage, StepResult, StepSpec
from flowdeck.runner.step_runner import StepRunner


def step(retry_count: int, max_attempts: int, attempt_base: int = 0) -> StepMessage:
    return StepMessage(
        token="t",
        run_id="r1",
        workflow="deploy",
        step="build",
        retry_count=retry_count,
        attempt_base=attempt_base,
        spec=StepSpec(max_attempts=max_attempts),
    )


def earlier(*errors: str, base: int = 0) -> dict[str, Any]:
    """The step item as its next attempt starts: one attempt#N record per earlier attempt."""
    return {f"attempt#{base + n}": {"status": "failed", "error": e} for n, e in enumerate(errors, 1)}


def failed(error: str) -> StepResult:
    return StepResult(status="failed", error=error, started_at="t0", ended_at="t1")


@pytest.mark.parametrize(
    ("retry_count", "max_attempts", "errors", "error", "retried"),
    [
        # No retries of its own: only a hand-back runs it again, twice at most.
        (0, 1, (), "StepFailed", False),
        (0, 1, (), WORKER_STOPPED, True),
        (1, 1, (WORKER_STOPPED,), WORKER_STOPPED, True),
        (2, 1, (WORKER_STOPPED, WORKER_STOPPED), WORKER_STOPPED, False),
        # A hand-back spends none of the step's own retries (max_attempts 2: one retry).
        (1, 2, (WORKER_STOPPED,), "StepFailed", True),
        (2, 2, (WORKER_STOPPED, "StepFailed"), "StepFailed", False),
        (1, 2, ("StepFailed",), "StepFailed", False),
        # A step's own failures do not spend the hand-back's retries.
        (1, 2, ("StepFailed",), WORKER_STOPPED, True),
    ],
)
def test_a_failed_attempt_is_retried_by_the_retrier_its_error_matches(
    retry_count, max_attempts, errors, error, retried
):
    assert StepRunner.retried(step(retry_count, max_attempts), earlier(*errors), failed(error)) is retried


def test_attempts_before_a_person_chose_retry_step_are_not_counted():
    # Attempts 1 and 2 were handed back before the step paused and a person chose Retry step.
    started = earlier(WORKER_STOPPED, WORKER_STOPPED)

    assert StepRunner.retried(step(0, 1, attempt_base=2), started, failed(WORKER_STOPPED)) is True
