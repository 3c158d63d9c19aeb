"""Compile a WorkflowDefinition into an Amazon States Language document.

Shape (JSONPath query language): Normalize -> RecordRunStart -> steps -> RecordRunSucceeded.
Each run/notify step is one `sqs:sendMessage.waitForTaskToken` task answered by a pool worker,
so a sequential step costs one billed state transition; the run record is kept by direct
DynamoDB integrations, so runs started from the AWS console are recorded too. Each step kind
has its fragment builder (run_step, approval, pause, run_record); this module lays them out in
sequences and Parallel states.
"""

from __future__ import annotations

import json
from typing import Any

from flowdeck.definition.models import WorkflowDefinition
from statemachines.approval import approval_state
from statemachines.asl import (
    DYNAMODB_TRANSIENT_RETRY,
    MERGE,
    NORMALIZE,
    RECORD_RUN_FAILED,
    RECORD_RUN_START,
    RECORD_RUN_SUCCEEDED,
    UPDATE_ITEM,
    Scope,
    branch_end,
)
from statemachines.fresh_step import (
    REUSED_FRESH_STEPS,
    reuse_choice,
    reuse_choice_name,
    reused_fresh_steps_state,
)
from statemachines.layout import Parallel, layout
from statemachines.pause import pause_defaults
from statemachines.run_record import fail_from_waiting_too, run_record_states
from statemachines.run_step import run_step_state


class _Layout:
    """Lays units (steps and Parallel blocks) out as states, naming each Parallel uniquely."""

    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self.parallel_count = 0

    def unit_name(self, unit: str | Parallel) -> str:
        """The state a unit is entered by: a fresh step's reuse check, a step, or a Parallel."""
        if isinstance(unit, str):
            step = self.definition.step(unit)
            return reuse_choice_name(step) if step in self.definition.fresh_steps() else unit
        # State names are at most 80 characters and unique across nested branches.
        self.parallel_count += 1
        return f"Parallel {self.parallel_count}: {_first_step(unit)}"[:80]

    def sequence(self, units: list[str | Parallel], scope: Scope, after: str | None) -> str:
        """Add states for `units`, ending at `after` (None: end of a branch); return the first name."""
        names = [self.unit_name(u) for u in units]
        for index, unit in enumerate(units):
            next_name = names[index + 1] if index + 1 < len(units) else after
            if isinstance(unit, str):
                state = self.step_state(unit, scope, next_name)
            else:
                state = self.parallel_state(unit, scope.top_level)
            if next_name is None:
                state["End"] = True
            else:
                state["Next"] = next_name
            if isinstance(unit, str) and names[index] != unit:
                step = self.definition.step(unit)
                reused_next = next_name or branch_end(scope, unit)
                scope.states[names[index]] = reuse_choice(step, self.definition, reused_next)
            scope.states[unit if isinstance(unit, str) else names[index]] = state
        return names[0]

    def step_state(self, step_id: str, scope: Scope, next_name: str | None) -> dict[str, Any]:
        step = self.definition.step(step_id)
        if step.approval is not None:
            return approval_state(step, scope)
        return run_step_state(step, scope, next_name)

    def parallel_state(self, block: Parallel, top_level: bool) -> dict[str, Any]:
        branches = []
        for branch in block.branches:
            branch_scope = Scope(self.definition, {}, top_level=False)
            start = self.sequence(list(branch), branch_scope, None)
            branches.append({"StartAt": start, "States": branch_scope.states})
        # Branch results are not needed: steps publish their outputs to the runs table.
        state: dict[str, Any] = {"Type": "Parallel", "Branches": branches, "ResultPath": None}
        if top_level:
            state["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RECORD_RUN_FAILED}
            ]
        return state


def _first_step(unit: str | Parallel) -> str:
    return unit if isinstance(unit, str) else _first_step(unit.branches[0][0])


def compile_workflow(definition: WorkflowDefinition) -> dict[str, Any]:
    """ASL for one workflow, with ${RunsTableName} and ${StepsQueueUrl} left to substitute."""
    units = layout([s.id for s in definition.steps], definition.dependencies())
    scope = Scope(definition, run_record_states(definition), top_level=True)
    first = _Layout(definition).sequence(units, scope, RECORD_RUN_SUCCEEDED)
    states = scope.states
    states[RECORD_RUN_START]["Next"] = first
    if definition.fresh_steps():
        states[REUSED_FRESH_STEPS] = reused_fresh_steps_state(definition, first)
        states[RECORD_RUN_START]["Next"] = REUSED_FRESH_STEPS
    pauses = pause_defaults(definition)
    if pauses:
        states[MERGE]["Parameters"]["pauses"] = pauses
    if pauses or any(step.approval is not None for step in definition.steps):
        fail_from_waiting_too(states)
    _retry_transient_writes(states)
    return {
        "Comment": f"Flowdeck workflow {definition.name}: {definition.description}".strip(": "),
        "StartAt": NORMALIZE,
        "States": states,
    }


def _retry_transient_writes(states: dict[str, Any]) -> None:
    """Every DynamoDB write of the state machine retries a throttled or failed request.

    Step Functions' service integrations do not retry on their own (the SDKs' standard mode does), so
    one throttled write of a run's or a step's record would otherwise end the run as failed.
    """
    for state in states.values():
        if state.get("Resource") == UPDATE_ITEM:
            state["Retry"] = [DYNAMODB_TRANSIENT_RETRY, *state.get("Retry", [])]
        for branch in state.get("Branches", []):
            _retry_transient_writes(branch["States"])


def render_definition(asl: dict[str, Any], substitutions: dict[str, str]) -> str:
    """Substitute ${Name} placeholders the way CDK's definition_substitutions does."""
    text = json.dumps(asl, indent=2)
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    return text
