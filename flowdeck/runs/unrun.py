"""Steps a run never reached: once the run has ended they read `skipped` (or `cancelled`), never `pending`.

`pending` means "not started yet" (SPEC §2); on an ended run it would promise a start that never
comes. So every way a run ends (succeeded, failed, timed out, cancelled, a failed start) ends its
unreached steps the same way: `skipped` with the reason in `not_run` ("the run failed at deploy"),
or `cancelled` when a cancel ended the run (as its steps that were running or waiting read). The
run-events reaction records it on each such step; the run view applies the same rule to a step the
reaction has not reached yet, as the runs stream trails the run's own record by a moment.

A step that `not_run` marks is no outcome to reuse: retry planning reads it as never run (`pending`),
unlike a step its condition or a person skipped.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from flowdeck.constants import PK
from flowdeck.runs.events import Reaction
from flowdeck.status import FINISHED_RUN_STATUSES, RunStatus, StepStatus
from flowdeck.stores.runs import RunStore

NOT_RUN = "not_run"


def ended_status(run_status: str) -> str:
    """What an unreached step of an ended run reads: cancelled with a cancelled run, else skipped."""
    return StepStatus.CANCELLED.value if run_status == RunStatus.CANCELLED else StepStatus.SKIPPED.value


def not_run_reason(run_status: str, failed_steps: Iterable[str]) -> str:
    """Why the run never reached a step, in a few words ("the run failed at deploy")."""
    if run_status == RunStatus.FAILED:
        failed = ", ".join(failed_steps)
        return f"the run failed at {failed}" if failed else "the run failed"
    if run_status == RunStatus.TIMED_OUT:
        return "the run timed out"
    if run_status == RunStatus.CANCELLED:
        return "the run was cancelled"
    return "the run ended first"


def unreached(plan: Iterable[str], statuses: Mapping[str, str | None]) -> list[str]:
    """The planned steps still `pending` (or with no record at all)."""
    return [step for step in plan if (statuses.get(step) or StepStatus.PENDING) == StepStatus.PENDING]


def planning_status(item: Mapping[str, Any]) -> str:
    """A step's status for retry planning: one the run's end marked `not_run` never ran (pending)."""
    if item.get(NOT_RUN):
        return StepStatus.PENDING.value
    return str(item.get("status") or StepStatus.PENDING.value)


def record_unrun_steps(runs: RunStore) -> Reaction:
    """A run-events reaction: once a run has ended, mark each step it never reached (see module doc).

    Idempotent: each write is conditional on the step still being pending, so a redelivered change
    (or a step that started meanwhile after all) is left as it is.
    """

    def react(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        status = str(new.get("status") or "")
        # Only the change that ended the run: later writes to an ended run (its duration) need nothing.
        if status not in FINISHED_RUN_STATUSES or (old or {}).get("status") == status:
            return
        run_id = str(new[PK])
        run, steps, _ = runs.get_run_items(run_id)
        if run is None:
            return
        plan = [str(step["id"]) for step in run.get("plan", [])]
        statuses = {step: item.get("status") for step, item in steps.items()}
        failed = [step for step in plan if statuses.get(step) == StepStatus.FAILED]
        reason = not_run_reason(status, failed)
        for step in unreached(plan, statuses):
            runs.mark_not_run(run_id, step, ended_status(status), reason)

    return react
