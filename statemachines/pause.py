"""A step with `on_failure: pause` that failed waits for a person's decision (flowdeck.control.pause)."""

from __future__ import annotations

from typing import Any

from flowdeck.definition.models import Step, WorkflowDefinition
from flowdeck.messages import WAIT_MESSAGE_TYPE
from statemachines.asl import SEND_AND_WAIT, STEPS_QUEUE_URL, Scope, branch_end, fail_path
from statemachines.deadline import deadline_states
from statemachines.fresh_step import pass_attempt_base

PAUSED = "Paused"
DECISION = "Decision"
PAUSE_TIMED_OUT = "PauseTimedOut"


def pause_key(definition: WorkflowDefinition, step: Step) -> str:
    """Where a paused step's decision lives in the state: $.pauses.p<index> (ids may hold '-')."""
    return f"p{definition.steps.index(step)}"


def pause_defaults(definition: WorkflowDefinition) -> dict[str, Any]:
    """Each pausing step's decision before any: no attempts recorded yet (the message reads it)."""
    return {
        pause_key(definition, step): {"decision": "none", "attempts": 0}
        for step in definition.steps
        if step.on_failure == "pause"
    }


def pause_states(step: Step, task: dict[str, Any], scope: Scope, next_name: str | None) -> str:
    """Paused (a token waits; no compute), Decision (retry -> the step again, skip -> on), deadline."""
    key = pause_key(scope.definition, step)
    # A retried step numbers its attempts on from those already recorded (the decision says how many).
    pass_attempt_base(task["Parameters"], f"$.pauses.{key}.attempts")
    paused, decision, timed_out = (f"{step.id}:{name}" for name in (PAUSED, DECISION, PAUSE_TIMED_OUT))
    fail = fail_path(step, scope)
    scope.states[paused] = _paused_state(step, scope, key, decision, timed_out, fail)
    scope.states[decision] = {
        "Type": "Choice",
        "Choices": [
            {"Variable": f"$.pauses.{key}.decision", "StringEquals": "retry", "Next": step.id},
            {
                "Variable": f"$.pauses.{key}.decision",
                "StringEquals": "skip",
                "Next": next_name or branch_end(scope, step.id),
            },
        ],
        "Default": fail,
    }
    cause = f"step {step.id} waited {step.pause_timeout}s for Retry step or Skip step (pause_timeout)"
    deadline_states(step, timed_out, PAUSE_TIMED_OUT, cause, scope)
    return paused


def _paused_state(
    step: Step, scope: Scope, key: str, decision: str, timed_out: str, fail: str
) -> dict[str, Any]:
    """The wait itself: a message the worker records as waiting, answered by Retry step or Skip step."""
    return {
        "Type": "Task",
        "Comment": f"step {step.id} failed: wait for Retry step, Skip step or Cancel",
        "Resource": SEND_AND_WAIT,
        "Parameters": {
            "QueueUrl": STEPS_QUEUE_URL,
            "MessageBody": {
                "type": WAIT_MESSAGE_TYPE,
                "reason": "paused",
                "token.$": "$$.Task.Token",
                "run_id.$": "$$.Execution.Name",
                "workflow": scope.definition.name,
                "step": step.id,
                "entered_at.$": "$$.State.EnteredTime",
                "timeout_seconds": step.pause_timeout,
                "allow_skip": step.allow_skip,
            },
        },
        # No heartbeat: nothing runs while a person decides; the deadline fails the step.
        "TimeoutSeconds": step.pause_timeout,
        "ResultPath": f"$.pauses.{key}",
        "Next": decision,
        "Catch": [
            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": timed_out},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": fail},
        ],
    }
