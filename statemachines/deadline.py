"""A waiting step's deadline (pause or approval): record the step failed, then fail the run or branch."""

from __future__ import annotations

from flowdeck.definition.models import Step
from statemachines.asl import RUNS_TABLE, UPDATE_ITEM, Scope, named_failure, step_key


def deadline_states(step: Step, name: str, error: str, cause: str, scope: Scope) -> None:
    """`name`: record a waiting step failed with `error` at its deadline, then fail the run or branch."""
    after = named_failure(name, error, cause, scope)
    scope.states[name] = {
        "Type": "Task",
        "Resource": UPDATE_ITEM,
        "Parameters": {
            "TableName": RUNS_TABLE,
            "Key": step_key(step),
            # The token no longer waits: a late decision finds nothing to answer.
            "UpdateExpression": (
                "SET #step = :step, #status = :failed, #error = :error, #cause = :cause, "
                "#ended_at = :now REMOVE #wait_token"
            ),
            "ExpressionAttributeNames": {
                "#step": "step",
                "#status": "status",
                "#error": "error",
                "#cause": "cause",
                "#ended_at": "ended_at",
                "#wait_token": "wait_token",
            },
            "ExpressionAttributeValues": {
                ":step": {"S": step.id},
                ":failed": {"S": "failed"},
                ":error": {"S": error},
                ":cause": {"S": cause},
                ":now": {"S.$": "$$.State.EnteredTime"},
            },
        },
        "ResultPath": None,
        "Next": after,
    }
