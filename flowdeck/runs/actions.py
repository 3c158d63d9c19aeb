"""What a person may do now on a run and on each of its steps, as the run view shows it (STYLE §14).

The page draws a button only for an action listed here; the endpoint still decides (who may approve is
the approval policy's call, answered with the API's message when it refuses).
"""

from __future__ import annotations

from typing import Any

from flowdeck.status import FINISHED_RUN_STATUSES, StepStatus


def run_actions(status: str, cancel_mode: str | None = None) -> list[str]:
    """`cancel`, `cancel_cleanup` and `force_cancel` while the run may still change; `retry` once it ended.

    While a cancel is under way (`cancel_mode` set) only escalating a graceful one to force is left.
    """
    if status in FINISHED_RUN_STATUSES:
        return ["retry"]
    if cancel_mode is not None:
        return [] if cancel_mode == "force" else ["force_cancel"]
    return ["cancel", "cancel_cleanup", "force_cancel"]


def step_actions(run_status: str, step: dict[str, Any]) -> list[str]:
    """Actions on one step view: approve/reject, retry/skip a paused step, retry a finished run from it.

    `retry_step` on a waiting step is POST /runs/{id}/steps/{step}/retry; on a failed step of a finished
    run it is POST /runs/{id}/retry (the failed step again); `retry_from_here` is POST /runs/{id}/retry
    with `from_step`.
    """
    status = step.get("status")
    if run_status in FINISHED_RUN_STATUSES:
        failed = ["retry_step"] if status == StepStatus.FAILED else []
        return [*failed, "retry_from_here"]
    if status != StepStatus.WAITING:
        return []
    if step.get("approval"):
        return ["approve", "reject"]
    # Paused on failure (on_failure: pause): retry it, or skip it when its definition allows.
    return ["retry_step", "skip"] if step.get("allow_skip") else ["retry_step"]
