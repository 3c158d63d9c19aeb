"""What every fragment shares: placeholders, state names, the scope being filled, small ASL helpers."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flowdeck.constants import (
    ASL_APPROVALS_QUEUE_URL,
    ASL_RUNS_TABLE,
    ASL_STEPS_QUEUE_URL,
    RUN_SK,
    STEP_SK_PREFIX,
)
from flowdeck.definition.models import Step, WorkflowDefinition

RUNS_TABLE = "${" + ASL_RUNS_TABLE + "}"
STEPS_QUEUE_URL = "${" + ASL_STEPS_QUEUE_URL + "}"
APPROVALS_QUEUE_URL = "${" + ASL_APPROVALS_QUEUE_URL + "}"
UPDATE_ITEM = "arn:aws:states:::dynamodb:updateItem"
# What the SDKs' standard retry mode retries of DynamoDB, for the integration (which retries nothing):
# a few tries over ~15 s, so a throttled write of a run's record does not end the run.
DYNAMODB_TRANSIENT_RETRY: dict[str, Any] = {
    "ErrorEquals": [
        "DynamoDB.ProvisionedThroughputExceededException",
        "DynamoDB.RequestLimitExceeded",
        "DynamoDB.ThrottlingException",
        "DynamoDB.InternalServerErrorException",
    ],
    "IntervalSeconds": 1,
    "MaxAttempts": 4,
    "BackoffRate": 2.0,
}
SEND_AND_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"

RECORD_RUN_START = "RecordRunStart"
RECORD_RUN_SUCCEEDED = "RecordRunSucceeded"
RECORD_RUN_FAILED = "RecordRunFailed"
NORMALIZE = "Normalize"
MERGE = "MergeDefaults"


@dataclass
class Scope:
    """Where fragments land: the workflow, the states being filled, top level or a Parallel branch."""

    definition: WorkflowDefinition
    states: dict[str, Any]
    top_level: bool


def intrinsic_string(value: str) -> str:
    """Quote text as an intrinsic-function string literal (ASL reserves ' { } and backslash)."""
    escaped = "".join("\\" + ch if ch in "'{}\\" else ch for ch in value)
    return f"'{escaped}'"


def run_key() -> dict[str, Any]:
    """The run item's key, from the execution's name (the run id)."""
    return {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": RUN_SK}}


def step_key(step: Step) -> dict[str, Any]:
    """The step item's key within the run."""
    return {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": STEP_SK_PREFIX + step.id}}


def inputs_expression() -> str:
    """The run's inputs over the workflow's defaults."""
    # Merged where used, so the state keeps only what was given (no literal JSON in intrinsics).
    return "States.JsonMerge($.input_defaults, $.meta.inputs, false)"


def fail_path(step: Step, scope: Scope) -> str:
    """Where a failure in $.error goes: the run's failure record, or out of the Parallel branch."""
    if scope.top_level:
        return RECORD_RUN_FAILED
    name = f"{step.id}:Failed!"
    scope.states[name] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    return name


def named_failure(name: str, error: str, cause: str, scope: Scope) -> str:
    """A failure the state machine names itself: into $.error for the run's record, or out of the branch."""
    if scope.top_level:
        after = f"{name}?"
        scope.states[after] = {
            "Type": "Pass",
            "Result": {"Error": error, "Cause": cause},
            "ResultPath": "$.error",
            "Next": RECORD_RUN_FAILED,
        }
    else:
        after = f"{name}!"
        scope.states[after] = {"Type": "Fail", "Error": error, "Cause": cause}
    return after


def branch_end(scope: Scope, step_id: str) -> str:
    """A state that ends the branch quietly (a continued or skipped last step)."""
    name = f"{step_id}:continue"
    scope.states[name] = {"Type": "Pass", "End": True}
    return name
