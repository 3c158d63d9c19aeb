"""StopTask on the fresh tasks of a run being cancelled: one code path for a cancel and the budget guard."""

from __future__ import annotations

from flowdeck.definition.models import WorkflowDefinition
from flowdeck.stores.fresh_tasks import FreshTasks, family_name
from flowdeck.stores.runs import RunStore
from statemachines.fresh_step import fresh_shapes


def stop_fresh_tasks(
    tasks: FreshTasks, runs: RunStore, definition: WorkflowDefinition, run_id: str, mode: str, reason: str
) -> list[str]:
    """StopTask the run's fresh tasks: those still starting (or pulling), and with force every one; the
    ARNs stopped.

    A task whose runner recorded the step's start is left to it (graceful, cleanup): its cancel
    watch gives the step its grace period, which ECS's stop timeout would cut short.
    """
    families = [family_name(key) for key in fresh_shapes([definition])]
    if not families:
        return []
    spare: set[str] = set()
    if mode != "force":
        _, steps, _ = runs.get_run_items(run_id)
        spare = {
            str(s["task_arn"]) for s in steps.values() if s.get("task_arn") and s.get("status") == "running"
        }
    running = tasks.running_of_run_safe(run_id, families)
    return tasks.stop([arn for arn in running if arn not in spare], run_id, reason)
