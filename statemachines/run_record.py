"""The run record kept by direct DynamoDB integrations: start, success, failure (console starts too)."""

from __future__ import annotations

from typing import Any

from flowdeck.control.cancelling import CANCEL_REQUESTED_AT
from flowdeck.definition.models import WorkflowDefinition
from flowdeck.stores.schema import (
    COST_USD,
    RUN_COST_USD,
    RUN_KIND,
    RUN_STARTED_AT,
    WORKFLOW_STATUS,
    workflow_status,
)
from statemachines.asl import (
    MERGE,
    NORMALIZE,
    RECORD_RUN_FAILED,
    RECORD_RUN_START,
    RECORD_RUN_SUCCEEDED,
    RUNS_TABLE,
    UPDATE_ITEM,
    inputs_expression,
    run_key,
)

RUN_FAILED = "RunFailed"
# Where a run's final record lands when the run already ended (the budget guard cancelled it).
RUN_NOT_RUNNING = "RunNotRunning"
# The state machine records a run's end only while no cancel is under way (flowdeck.control.cancelling).
NO_CANCEL = "attribute_not_exists(#cancel)"
RUN_ALREADY_ENDED = "RunAlreadyEnded"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"

# What an execution input may omit (a console start sends anything); the API always sends all of it.
# `reuse`: steps a retry takes over from the run it retries (recorded beforehand; the worker skips them).
# `trigger_detail`: what started it, shown in history ("main @ abc1234" for a git push; "" if nothing).
EXECUTION_INPUT_DEFAULTS = {
    "inputs": {},
    "trigger": "manual",
    "started_by": "aws-console",
    "reuse": [],
    "trigger_detail": "",
}

# A merge: the start path (flowdeck.control.concurrency.start_record) may have recorded the run
# already, with the same fields set only where missing, so either order of arrival gives the same
# item. Only the status (a promoted run's queued) and what only the execution knows (its ARN) are
# overwritten.
_START_UPDATE = (
    "SET #run_id = if_not_exists(#run_id, :run_id), #kind = if_not_exists(#kind, :kind), "
    "#workflow = if_not_exists(#workflow, :workflow), #status = :running, "
    "#trigger = if_not_exists(#trigger, :trigger), "
    "#started_by = if_not_exists(#started_by, :started_by), "
    "#trigger_detail = if_not_exists(#trigger_detail, :trigger_detail), "
    "#started_at = if_not_exists(#started_at, :now), "
    "#inputs = if_not_exists(#inputs, :inputs), #plan = if_not_exists(#plan, :plan), "
    "#arn = :arn, #ws = :ws, "
    # The history's indexes: by-status sorts on run_started_at, by-cost on
    # run_cost_usd (0 until the first usage, so every run is in it).
    "#run_started_at = if_not_exists(#run_started_at, :now), "
    "#cost = if_not_exists(#cost, :zero), "
    "#run_cost = if_not_exists(#run_cost, :zero)"
)
# Never over a run that ended before its execution got here: cancelled while queued or starting,
# or recorded failed because StartExecution seemed to fail.
_START_CONDITION = "attribute_not_exists(#status) OR #status IN (:running, :queued)"
_START_NAMES = {
    "#run_id": "run_id",
    "#kind": "kind",
    "#workflow": "workflow",
    "#status": "status",
    "#trigger": "trigger",
    "#started_by": "started_by",
    "#trigger_detail": "trigger_detail",
    "#started_at": "started_at",
    "#inputs": "inputs_json",
    "#plan": "plan",
    "#arn": "execution_arn",
    "#ws": WORKFLOW_STATUS,
    "#run_started_at": RUN_STARTED_AT,
    "#cost": COST_USD,
    "#run_cost": RUN_COST_USD,
}


def run_record_states(definition: WorkflowDefinition) -> dict[str, Any]:
    """Normalize the input, record the start; the success and failure records; the run's two Fail ends."""
    return {
        NORMALIZE: {
            "Type": "Pass",
            "Comment": "Defaults for what an execution input may omit (a console start sends anything)",
            "Parameters": {
                "given.$": "$",
                "defaults": EXECUTION_INPUT_DEFAULTS,
                "input_defaults": definition.input_defaults(),
            },
            "Next": MERGE,
        },
        MERGE: {
            "Type": "Pass",
            "Parameters": {
                "meta.$": "States.JsonMerge($.defaults, $.given, false)",
                "input_defaults.$": "$.input_defaults",
            },
            "Next": RECORD_RUN_START,
        },
        RECORD_RUN_START: _record_start(definition),
        RECORD_RUN_SUCCEEDED: _record_succeeded(definition),
        RECORD_RUN_FAILED: _record_failed(definition),
        RUN_FAILED: {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"},
        RUN_NOT_RUNNING: {
            "Type": "Fail",
            "Error": RUN_ALREADY_ENDED,
            "Cause": (
                "the run had already ended (cancelled, or its start failed) "
                "when this execution tried to record it"
            ),
        },
    }


def fail_from_waiting_too(states: dict[str, Any]) -> None:
    """A run fails from `waiting` too: a pause or approval deadline, or a sibling branch failing meanwhile."""
    failed = states[RECORD_RUN_FAILED]["Parameters"]
    failed["ConditionExpression"] = f"#status IN (:running, :waiting) AND {NO_CANCEL}"
    failed["ExpressionAttributeValues"][":waiting"] = {"S": "waiting"}


def _unless_ended() -> list[dict[str, Any]]:
    """A run's final record is written only while it runs; else the execution ends, the record kept."""
    return [{"ErrorEquals": [CONDITION_FAILED], "ResultPath": None, "Next": RUN_NOT_RUNNING}]


def _record_update(parameters: dict[str, Any], then: dict[str, Any]) -> dict[str, Any]:
    """An updateItem task on the run item whose refusal (the run ended) goes to RunNotRunning."""
    return {
        "Type": "Task",
        "Resource": UPDATE_ITEM,
        "Parameters": {"TableName": RUNS_TABLE, "Key": run_key(), **parameters},
        "ResultPath": None,
        "Catch": _unless_ended(),
        **then,
    }


def _record_start(definition: WorkflowDefinition) -> dict[str, Any]:
    # The run item lists its steps once; each step's state lives in its own small item
    # (sk STEP#<id>), so a step's writes never rewrite the whole run (DynamoDB bills by size).
    plan = [{"M": {"id": {"S": step.id}, "kind": {"S": step.kind}}} for step in definition.steps]
    parameters = {
        "UpdateExpression": _START_UPDATE,
        "ConditionExpression": _START_CONDITION,
        "ExpressionAttributeNames": dict(_START_NAMES),
        "ExpressionAttributeValues": {
            ":run_id": {"S.$": "$$.Execution.Name"},
            ":kind": {"S": RUN_KIND},
            ":workflow": {"S": definition.name},
            ":running": {"S": "running"},
            ":trigger": {"S.$": "$.meta.trigger"},
            ":started_by": {"S.$": "$.meta.started_by"},
            ":trigger_detail": {"S.$": "$.meta.trigger_detail"},
            ":now": {"S.$": "$$.State.EnteredTime"},
            ":inputs": {"S.$": f"States.JsonToString({inputs_expression()})"},
            ":plan": {"L": plan},
            ":arn": {"S.$": "$$.Execution.Id"},
            ":ws": {"S": workflow_status(definition.name, "running")},
            ":zero": {"N": "0"},
            ":queued": {"S": "queued"},
        },
    }
    return _record_update(parameters, {"Next": ""})  # Next: set to the first unit


def _record_succeeded(definition: WorkflowDefinition) -> dict[str, Any]:
    parameters = {
        "UpdateExpression": "SET #status = :succeeded, #ended_at = :now, #ws = :ws",
        # A run whose cancel is under way is recorded cancelled by the cancel (once its
        # last process ended), never succeeded behind it.
        "ConditionExpression": f"#status = :running AND {NO_CANCEL}",
        "ExpressionAttributeNames": {
            "#cancel": CANCEL_REQUESTED_AT,
            "#status": "status",
            "#ended_at": "ended_at",
            "#ws": WORKFLOW_STATUS,
        },
        "ExpressionAttributeValues": {
            ":succeeded": {"S": "succeeded"},
            ":ws": {"S": workflow_status(definition.name, "succeeded")},
            ":running": {"S": "running"},
            ":now": {"S.$": "$$.State.EnteredTime"},
        },
    }
    return _record_update(parameters, {"End": True})


def _record_failed(definition: WorkflowDefinition) -> dict[str, Any]:
    parameters = {
        "UpdateExpression": (
            "SET #status = :failed, #ended_at = :now, #error = :error, #cause = :cause, #ws = :ws"
        ),
        # A run cancelled meanwhile, or whose cancel is under way, keeps its record.
        "ConditionExpression": f"#status = :running AND {NO_CANCEL}",
        "ExpressionAttributeNames": {
            "#cancel": CANCEL_REQUESTED_AT,
            "#status": "status",
            "#ended_at": "ended_at",
            "#error": "error",
            "#cause": "error_json",
            "#ws": WORKFLOW_STATUS,
        },
        "ExpressionAttributeValues": {
            ":failed": {"S": "failed"},
            ":ws": {"S": workflow_status(definition.name, "failed")},
            ":running": {"S": "running"},
            ":now": {"S.$": "$$.State.EnteredTime"},
            ":error": {"S.$": "$.error.Error"},
            # The whole error as JSON: Cause may be absent or null, and an S value may not.
            ":cause": {"S.$": "States.JsonToString($.error)"},
        },
    }
    return _record_update(parameters, {"Next": RUN_FAILED})
