"""An approval step: one task that asks the notifier's queue and waits (a token, no compute) for people."""

from __future__ import annotations

from typing import Any

from flowdeck.definition.models import Approval, Step
from flowdeck.messages import APPROVAL_MESSAGE_TYPE
from statemachines.asl import APPROVALS_QUEUE_URL, SEND_AND_WAIT, Scope, fail_path, inputs_expression
from statemachines.deadline import deadline_states

# Its deadline fails the step and the run.
APPROVAL_TIMED_OUT = "ApprovalTimedOut"


def approval_state(step: Step, scope: Scope) -> dict[str, Any]:
    """The request to the notifier's queue, then the wait for people.

    Approve answers success (on to the next step); reject answers ApprovalRejected and a cancel
    Cancelled (the run fails, or stays cancelled); the deadline is this state's timeout.
    """
    approval = step.approval or Approval()
    fail = fail_path(step, scope)
    timed_out = f"{step.id}:{APPROVAL_TIMED_OUT}"
    cause = f"nobody decided approval {step.id} within {approval.timeout}s (timeout)"
    deadline_states(step, timed_out, APPROVAL_TIMED_OUT, cause, scope)
    return {
        "Type": "Task",
        "Comment": step.name or f"approval step {step.id}",
        "Resource": SEND_AND_WAIT,
        "Parameters": {
            "QueueUrl": APPROVALS_QUEUE_URL,
            "MessageBody": {
                "type": APPROVAL_MESSAGE_TYPE,
                "token.$": "$$.Task.Token",
                "run_id.$": "$$.Execution.Name",
                "workflow": scope.definition.name,
                "step": step.id,
                "entered_at.$": "$$.State.EnteredTime",
                "timeout_seconds": approval.timeout,
                "inputs.$": inputs_expression(),
                "approval": approval.model_dump(),
            },
        },
        # No heartbeat: nothing runs while people decide; the deadline fails the step.
        "TimeoutSeconds": approval.timeout,
        "ResultPath": None,
        "Catch": [
            {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": timed_out},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": fail},
        ],
    }
