"""Retry a finished run: a new run, linked by `retry_of`, that starts at the failed step or a chosen one.

Step Functions has no redrive in the emulator (and a redrive cannot change inputs), so a retry is a
new execution of the same state machine. Steps before the start point are not run again: their
records, outputs and artifacts are copied into the new run before it starts, and the execution
input names them (`reuse`), so the worker answers their task at once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from flowdeck.definition.inputs import resolve_inputs
from flowdeck.definition.models import WorkflowDefinition
from flowdeck.errors import BadRequest, Conflict, FlowdeckError
from flowdeck.runs.service import RunService, StartRun, idempotent_run_id, new_run_id
from flowdeck.runs.unrun import planning_status
from flowdeck.status import FINISHED_RUN_STATUSES, RunStatus, StepStatus, Trigger
from flowdeck.stores.run_lookup import load_run

# A reused step keeps how it ended in the run it comes from.
REUSABLE = {StepStatus.SUCCEEDED.value, StepStatus.SKIPPED.value}
# What a reused step's record keeps: how it ended and what it left. Not its usage or attempts: the
# work was paid for in the run it comes from, and the new run's cost must not count it again.
KEPT_FIELDS = (
    "step",
    "status",
    "attempt",
    "started_at",
    "ended_at",
    "exit_code",
    "process_seconds",
    "summary",
    "artifacts",
    "artifact_warnings",
)


class RetryRun(BaseModel):
    """Body of POST /runs/{id}/retry."""

    model_config = ConfigDict(extra="forbid")
    from_step: str | None = Field(default=None, min_length=1, max_length=64)
    # Laid over the retried run's inputs; what is not given keeps its old value.
    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


@dataclass(frozen=True)
class RetryPlan:
    """Where the new run starts, and which steps it takes over from the old one."""

    start: list[str]
    reused: list[str]


def downstream(dependencies: dict[str, list[str]], roots: Iterable[str]) -> set[str]:
    """The roots and every step that needs one of them, transitively."""
    needed_by: dict[str, list[str]] = {step: [] for step in dependencies}
    for step, needs in dependencies.items():
        for need in needs:
            needed_by.setdefault(need, []).append(step)
    found: set[str] = set()
    todo = list(roots)
    while todo:
        step = todo.pop()
        if step not in found:
            found.add(step)
            todo += needed_by.get(step, [])
    return found


def plan_retry(
    definition: WorkflowDefinition, run_status: str, step_status: dict[str, str], from_step: str | None
) -> RetryPlan:
    """The start step(s) and the reused steps; BadRequest or Conflict when there is nothing to retry."""
    order = [step.id for step in definition.steps]
    if from_step is not None:
        if from_step not in order:
            raise BadRequest(f"from_step: workflow {definition.name} has no step {from_step!r}")
        start = [from_step]
    else:
        start = [s for s in order if step_status.get(s) == StepStatus.FAILED]
        if not start and run_status != RunStatus.SUCCEEDED:
            # Cancelled, timed out, or failed before a step did: the first step that did not finish well.
            start = [s for s in order if step_status.get(s) not in REUSABLE][:1]
        if not start:
            raise Conflict("nothing failed in this run: pass from_step to run it again from a step")
    again = downstream(definition.dependencies(), start)
    reused = [s for s in order if s not in again and step_status.get(s) in REUSABLE]
    return RetryPlan(start=start, reused=reused)


def retry_run_id(workflow: str, run_id: str, key: str | None) -> str:
    """A fresh id; with an idempotency key, the same id for the same run and key."""
    return idempotent_run_id(workflow, f"retry\0{run_id}\0{key}") if key else new_run_id()


class Retries:
    """POST /runs/{id}/retry: plan the new run, copy what it reuses, start it, link both runs."""

    def __init__(self, service: RunService) -> None:
        # Through the service's start_run, so a retry goes the way of any run (concurrency limits too).
        self.service = service
        self.runs = service.runs

    def retry(self, run_id: str, request: RetryRun, caller: str) -> dict[str, Any]:
        run, step_items, _ = load_run(self.runs, run_id, require="workflow")
        self.service.permissions.check(str(run["workflow"]), "retry", caller)
        status = str(run.get("status") or "")
        if status not in FINISHED_RUN_STATUSES:
            raise Conflict(f"run {run_id} is {status or 'starting'}: only a finished run can be retried")
        definition = self.service.catalog.get(str(run["workflow"]))
        plan = plan_retry(
            definition,
            status,
            {step: planning_status(item) for step, item in step_items.items()},
            request.from_step,
        )
        # Checked before anything is written: a refused retry changes nothing.
        inputs = resolve_inputs(definition, self.inputs(definition, run, request.inputs))
        self.service.states.check(definition.name)
        new_id = retry_run_id(definition.name, run_id, request.idempotency_key)
        claimed = self.runs.claim_retry(new_id, run_id, plan.start, plan.reused)
        if not claimed:
            # A repeat with the same idempotency key: go on with the plan the first call recorded
            # (every write below is idempotent, and a started execution is not started again).
            plan = self.recorded_plan(new_id, run_id)
        # Written before the execution starts, so no step of the new run misses them.
        self.runs.copy_outputs(run_id, new_id, plan.reused)
        for step in plan.reused:
            self.runs.put_reused_step(new_id, self.reused_record(step, step_items[step], run_id))
        try:
            started = self.service.start_run(
                definition.name,
                StartRun(inputs=inputs),
                started_by=caller,
                trigger=Trigger.RETRY,
                run_id=new_id,
                extra={"reuse": plan.reused},
            )
        except FlowdeckError:
            # Refused (the workflow's concurrency limit with on_limit: reject): leave nothing behind.
            if claimed:
                self.runs.forget_retry(new_id, plan.reused)
            raise
        # After the start: a queued run's record is created by the start, and these fields join it.
        self.runs.link_retry(new_id, run_id, plan.start, plan.reused)
        self.runs.add_retry(run_id, new_id)
        return {
            "run_id": new_id,
            "retry_of": run_id,
            "from_step": plan.start,
            "reused": plan.reused,
            "status": started.get("status", RunStatus.RUNNING.value),
        }

    @staticmethod
    def inputs(definition: WorkflowDefinition, run: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
        """The old run's inputs (those the workflow still declares) with `given` laid over."""
        try:
            old = json.loads(run.get("inputs_json") or "{}")
        except ValueError:
            old = {}
        kept = {k: v for k, v in old.items() if k in definition.inputs} if isinstance(old, dict) else {}
        return kept | given

    @staticmethod
    def reused_record(step: str, item: dict[str, Any], run_id: str) -> dict[str, Any]:
        """The record of a reused step in the new run: how it ended, and where it comes from."""
        # A step reused again (a retry of a retry) names the run where it really ran.
        origin = item.get("reused_from") or run_id
        return {k: item[k] for k in KEPT_FIELDS if k in item} | {"step": step, "reused_from": origin}

    def recorded_plan(self, new_id: str, run_id: str) -> RetryPlan:
        claim = self.runs.retry_claim(new_id)
        if claim is None or claim.get("retry_of") != run_id:
            raise Conflict(f"idempotency_key already names run {new_id}, which is not a retry of {run_id}")
        return RetryPlan(start=list(claim.get("retry_from") or []), reused=list(claim.get("reused") or []))
