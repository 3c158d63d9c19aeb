"""Compile a WorkflowDefinition into an Amazon States Language document.

Shape (JSONPath query language): Normalize -> RecordRunStart -> steps -> RecordRunSucceeded.
Each run/notify step is one `sqs:sendMessage.waitForTaskToken` task answered by a pool worker,
so a sequential step costs one billed state transition; the run record is kept by direct
DynamoDB integrations, so runs started from the AWS console are recorded too.
"""

from __future__ import annotations

import json
from typing import Any

from flowdeck.constants import (
    ASL_APPROVALS_QUEUE_URL,
    ASL_RUNS_TABLE,
    ASL_STEPS_QUEUE_URL,
    DEFAULT_STEP_TIMEOUT_SECONDS,
    LOST_TOKEN,
    RUN_SK,
    STEP_SK_PREFIX,
)
from flowdeck.control.cancelling import CANCEL_REQUESTED_AT
from flowdeck.definition.models import Approval, Step, WorkflowDefinition
from flowdeck.runner.pause import WAIT_MESSAGE_TYPE
from flowdeck.stores.schema import (
    COST_USD,
    RUN_COST_USD,
    RUN_KIND,
    RUN_STARTED_AT,
    WORKFLOW_STATUS,
    workflow_status,
)
from statemachines.layout import Parallel, layout

RUNS_TABLE = "${" + ASL_RUNS_TABLE + "}"
STEPS_QUEUE_URL = "${" + ASL_STEPS_QUEUE_URL + "}"
APPROVALS_QUEUE_URL = "${" + ASL_APPROVALS_QUEUE_URL + "}"

RECORD_RUN_START = "RecordRunStart"
RECORD_RUN_SUCCEEDED = "RecordRunSucceeded"
RECORD_RUN_FAILED = "RecordRunFailed"
RUN_FAILED = "RunFailed"
# Where a run's final record lands when the run already ended (the budget guard cancelled it).
RUN_NOT_RUNNING = "RunNotRunning"
# The state machine records a run's end only while no cancel is under way (flowdeck.control.cancelling).
NO_CANCEL = "attribute_not_exists(#cancel)"
RUN_ALREADY_ENDED = "RunAlreadyEnded"
CONDITION_FAILED = "DynamoDB.ConditionalCheckFailedException"
NORMALIZE = "Normalize"
WORKER_LOST = "WorkerLost"
MERGE = "MergeDefaults"
# A step with `on_failure: pause` that failed waits for a person's decision (flowdeck.control.pause).
PAUSED = "Paused"
DECISION = "Decision"
PAUSE_TIMED_OUT = "PauseTimedOut"
# Failures that end the run whatever the step says: a paused step never holds a cancelled run.
RUN_ENDING_ERRORS = ["BudgetExceeded", "Cancelled"]
# An approval step waits for people (flowdeck.approvals); its deadline fails the step and the run.
APPROVAL_MESSAGE_TYPE = "approval"
APPROVAL_TIMED_OUT = "ApprovalTimedOut"

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

# Backstop on top of the worker's own timeout, so a wedged worker cannot hold a run forever.
TIMEOUT_MARGIN_SECONDS = 60


def intrinsic_string(value: str) -> str:
    """Quote text as an intrinsic-function string literal (ASL reserves ' { } and backslash)."""
    escaped = "".join("\\" + ch if ch in "'{}\\" else ch for ch in value)
    return f"'{escaped}'"


def _ddb_key() -> dict[str, Any]:
    return {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": RUN_SK}}


def _unless_ended() -> list[dict[str, Any]]:
    """A run's final record is written only while it runs; else the execution ends, the record kept."""
    return [{"ErrorEquals": [CONDITION_FAILED], "ResultPath": None, "Next": RUN_NOT_RUNNING}]


def _inputs_expression() -> str:
    # Merged where used, so the state keeps only what was given (no literal JSON in intrinsics).
    return "States.JsonMerge($.input_defaults, $.meta.inputs, false)"


def step_spec(step: Step) -> dict[str, Any]:
    """The static part of a step message: what the worker needs to run it."""
    spec: dict[str, Any] = {
        "kind": step.kind,
        "env": dict(step.env),
        "timeout": step.timeout or DEFAULT_STEP_TIMEOUT_SECONDS,
        "max_attempts": step.retries.max + 1,
        "on_failure": step.on_failure,
        "resources": step.resources.model_dump(),
    }
    if step.run is not None:
        spec["run"] = step.run
    if step.command is not None:
        spec["command"] = list(step.command)
    if step.if_ is not None:
        spec["if"] = step.if_
    if step.grace_period is not None:
        spec["grace_period"] = step.grace_period
    if step.notify is not None:
        spec["notify"] = step.notify.model_dump()
    if step.artifacts.upload or step.artifacts.download:
        spec["artifacts"] = step.artifacts.model_dump()
    return spec


class _Compiler:
    def __init__(self, definition: WorkflowDefinition) -> None:
        self.definition = definition
        self.states: dict[str, Any] = {}
        self.parallel_count = 0

    # -- run record -------------------------------------------------------------------------
    def run_record_states(self) -> dict[str, Any]:
        # The run item lists its steps once; each step's state lives in its own small item
        # (sk STEP#<id>), so a step's writes never rewrite the whole run (DynamoDB bills by size).
        plan = [{"M": {"id": {"S": step.id}, "kind": {"S": step.kind}}} for step in self.definition.steps]
        return {
            NORMALIZE: {
                "Type": "Pass",
                "Comment": "Defaults for what an execution input may omit (a console start sends anything)",
                "Parameters": {
                    "given.$": "$",
                    "defaults": EXECUTION_INPUT_DEFAULTS,
                    "input_defaults": self.definition.input_defaults(),
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
            RECORD_RUN_START: {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "TableName": RUNS_TABLE,
                    "Key": _ddb_key(),
                    # A merge: the start path (flowdeck.control.concurrency.start_record) may have
                    # recorded the run already, with the same fields set only where missing, so
                    # either order of arrival gives the same item. Only the status (a promoted
                    # run's queued) and what only the execution knows (its ARN) are overwritten.
                    "UpdateExpression": (
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
                    ),
                    # Never over a run that ended before its execution got here: cancelled while
                    # queued or starting, or recorded failed because StartExecution seemed to fail.
                    "ConditionExpression": "attribute_not_exists(#status) OR #status IN (:running, :queued)",
                    "ExpressionAttributeNames": {
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
                    },
                    "ExpressionAttributeValues": {
                        ":run_id": {"S.$": "$$.Execution.Name"},
                        ":kind": {"S": RUN_KIND},
                        ":workflow": {"S": self.definition.name},
                        ":running": {"S": "running"},
                        ":trigger": {"S.$": "$.meta.trigger"},
                        ":started_by": {"S.$": "$.meta.started_by"},
                        ":trigger_detail": {"S.$": "$.meta.trigger_detail"},
                        ":now": {"S.$": "$$.State.EnteredTime"},
                        ":inputs": {"S.$": f"States.JsonToString({_inputs_expression()})"},
                        ":plan": {"L": plan},
                        ":arn": {"S.$": "$$.Execution.Id"},
                        ":ws": {"S": workflow_status(self.definition.name, "running")},
                        ":zero": {"N": "0"},
                        ":queued": {"S": "queued"},
                    },
                },
                "ResultPath": None,
                "Catch": _unless_ended(),
                "Next": "",  # set to the first unit
            },
            RECORD_RUN_SUCCEEDED: {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "TableName": RUNS_TABLE,
                    "Key": _ddb_key(),
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
                        ":ws": {"S": workflow_status(self.definition.name, "succeeded")},
                        ":running": {"S": "running"},
                        ":now": {"S.$": "$$.State.EnteredTime"},
                    },
                },
                "ResultPath": None,
                "Catch": _unless_ended(),
                "End": True,
            },
            RECORD_RUN_FAILED: {
                "Type": "Task",
                "Resource": "arn:aws:states:::dynamodb:updateItem",
                "Parameters": {
                    "TableName": RUNS_TABLE,
                    "Key": _ddb_key(),
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
                        ":ws": {"S": workflow_status(self.definition.name, "failed")},
                        ":running": {"S": "running"},
                        ":now": {"S.$": "$$.State.EnteredTime"},
                        ":error": {"S.$": "$.error.Error"},
                        # The whole error as JSON: Cause may be absent or null, and an S value may not.
                        ":cause": {"S.$": "States.JsonToString($.error)"},
                    },
                },
                "ResultPath": None,
                "Catch": _unless_ended(),
                "Next": RUN_FAILED,
            },
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

    # -- steps ------------------------------------------------------------------------------
    def step_lost_state(self, step: Step, cause: str, then: str) -> dict[str, Any]:
        """Record a step whose worker can no longer report (dead worker, backstop timeout)."""
        return {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:updateItem",
            "Parameters": {
                "TableName": RUNS_TABLE,
                "Key": {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": STEP_SK_PREFIX + step.id}},
                # token "lost": a late answer from that worker must not overwrite this record.
                "UpdateExpression": "SET #step = :step, #status = :failed, #error = :error, #cause = :cause, "
                "#ended_at = :now, #token = :lost",
                "ExpressionAttributeNames": {
                    "#token": "token",
                    "#step": "step",
                    "#status": "status",
                    "#error": "error",
                    "#cause": "cause",
                    "#ended_at": "ended_at",
                },
                "ExpressionAttributeValues": {
                    ":step": {"S": step.id},
                    ":lost": {"S": LOST_TOKEN},
                    ":failed": {"S": "failed"},
                    ":error": {"S": WORKER_LOST},
                    ":cause": {"S": cause},
                    ":now": {"S.$": "$$.State.EnteredTime"},
                },
            },
            "ResultPath": None,
            "Next": then,
        }

    def step_state(
        self, step: Step, states: dict[str, Any], next_name: str | None, top_level: bool
    ) -> dict[str, Any]:
        if step.approval is not None:
            return self.approval_state(step, states, top_level)
        timeout = (step.timeout or DEFAULT_STEP_TIMEOUT_SECONDS) + TIMEOUT_MARGIN_SECONDS
        # Step Functions refuses a heartbeat that is not shorter than the timeout.
        heartbeat = min(self.definition.runtime_config.heartbeat_seconds, timeout - 1)
        task: dict[str, Any] = {
            "Type": "Task",
            "Comment": step.name or f"{step.kind} step {step.id}",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": STEPS_QUEUE_URL,
                "MessageBody": {
                    "token.$": "$$.Task.Token",
                    "run_id.$": "$$.Execution.Name",
                    "workflow": self.definition.name,
                    "step": step.id,
                    "retry_count.$": "$$.State.RetryCount",
                    "heartbeat_seconds": heartbeat,
                    # Logs and artifacts of this run expire with the workflow's retention.
                    "retention_hours": self.definition.runtime_config.retention_hours,
                    "inputs.$": _inputs_expression(),
                    "reuse.$": "$.meta.reuse",
                    "spec": step_spec(step),
                },
            },
            "HeartbeatSeconds": heartbeat,
            "TimeoutSeconds": timeout,
            # Outputs live in the runs table, not in the state: the state stays small (256 KiB limit).
            "ResultPath": None,
        }
        if (budget := self.definition.runtime_config.max_cost_usd) is not None:
            # A string, so the worker reads it as an exact Decimal (the budget guard compares money).
            task["Parameters"]["MessageBody"]["max_cost_usd"] = str(budget)
        if step.retries.max:
            task["Retry"] = [
                {
                    "ErrorEquals": ["States.ALL"],
                    "IntervalSeconds": max(step.retries.interval, 1),
                    "MaxAttempts": step.retries.max,
                    "BackoffRate": step.retries.backoff,
                }
            ]
        continues = step.on_failure == "continue"
        # A live worker reports its own failures, a timeout included (StepTimeout). A heartbeat
        # timeout, or no answer by the backstop timeout, means the worker is gone: the state
        # machine records that itself. (The emulator reports heartbeat timeouts as States.Timeout.)
        cause = f"the worker running step {step.id} stopped answering (no heartbeat or no result in time)"
        recorder = f"{step.id}:{WORKER_LOST}"
        pauses = step.on_failure == "pause"
        if pauses:
            # A lost worker pauses the step too: a person decides, as for any other failure.
            then = self.pause_states(step, task, states, next_name, top_level)
        elif continues:
            then = next_name or self.branch_end(states, step.id)
        elif top_level:
            # Name the error for the run's failure record, which reads $.error.
            then = f"{step.id}:{WORKER_LOST}?"
            states[then] = {
                "Type": "Pass",
                "Result": {"Error": WORKER_LOST, "Cause": cause},
                "ResultPath": "$.error",
                "Next": RECORD_RUN_FAILED,
            }
        else:
            # Leave the branch with the error; the Parallel's Catch records the run's failure.
            then = f"{step.id}:{WORKER_LOST}!"
            states[then] = {"Type": "Fail", "Error": WORKER_LOST, "Cause": cause}
        states[recorder] = self.step_lost_state(step, cause, then)
        catchers: list[dict[str, Any]] = [
            {
                "ErrorEquals": ["States.HeartbeatTimeout", "States.Timeout"],
                "ResultPath": None if continues else "$.error",
                "Next": recorder,
            }
        ]
        # Other failures were recorded by the worker: go on (continue), record the run's failure
        # (top level), or leave the Parallel branch with the error, for the Parallel's Catch.
        if pauses:
            catchers += [
                {
                    "ErrorEquals": RUN_ENDING_ERRORS,
                    "ResultPath": "$.error",
                    "Next": self.fail_path(step, states, top_level),
                },
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": then},
            ]
        elif continues:
            catchers.append(
                {
                    "ErrorEquals": ["States.ALL"],
                    "ResultPath": None,
                    "Next": next_name or self.branch_end(states, step.id),
                }
            )
        elif top_level:
            catchers.append(
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RECORD_RUN_FAILED}
            )
        task["Catch"] = catchers
        return task

    # -- pause on failure --------------------------------------------------------------------
    def pause_key(self, step: Step) -> str:
        """Where a paused step's decision lives in the state: $.pauses.p<index> (ids may hold '-')."""
        return f"p{self.definition.steps.index(step)}"

    def fail_path(self, step: Step, states: dict[str, Any], top_level: bool) -> str:
        """Where a failure in $.error goes: the run's failure record, or out of the Parallel branch."""
        if top_level:
            return RECORD_RUN_FAILED
        name = f"{step.id}:Failed!"
        states[name] = {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
        return name

    def pause_states(
        self, step: Step, task: dict[str, Any], states: dict[str, Any], next_name: str | None, top_level: bool
    ) -> str:
        """Paused (a token waits; no compute), Decision (retry -> the step again, skip -> on), deadline."""
        key = self.pause_key(step)
        # A retried step numbers its attempts on from those already recorded (the decision says how many).
        task["Parameters"]["MessageBody"]["attempt_base.$"] = f"$.pauses.{key}.attempts"
        paused, decision, timed_out = (f"{step.id}:{name}" for name in (PAUSED, DECISION, PAUSE_TIMED_OUT))
        fail = self.fail_path(step, states, top_level)
        states[paused] = {
            "Type": "Task",
            "Comment": f"step {step.id} failed: wait for Retry step, Skip step or Cancel",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": STEPS_QUEUE_URL,
                "MessageBody": {
                    "type": WAIT_MESSAGE_TYPE,
                    "reason": "paused",
                    "token.$": "$$.Task.Token",
                    "run_id.$": "$$.Execution.Name",
                    "workflow": self.definition.name,
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
        states[decision] = {
            "Type": "Choice",
            "Choices": [
                {"Variable": f"$.pauses.{key}.decision", "StringEquals": "retry", "Next": step.id},
                {
                    "Variable": f"$.pauses.{key}.decision",
                    "StringEquals": "skip",
                    "Next": next_name or self.branch_end(states, step.id),
                },
            ],
            "Default": fail,
        }
        cause = f"step {step.id} waited {step.pause_timeout}s for Retry step or Skip step (pause_timeout)"
        self.deadline_states(step, timed_out, PAUSE_TIMED_OUT, cause, states, top_level)
        return paused

    def deadline_states(
        self, step: Step, name: str, error: str, cause: str, states: dict[str, Any], top_level: bool
    ) -> None:
        """`name`: record a waiting step failed with `error` at its deadline, then fail the run or branch."""
        if top_level:
            after = f"{name}?"
            states[after] = {
                "Type": "Pass",
                "Result": {"Error": error, "Cause": cause},
                "ResultPath": "$.error",
                "Next": RECORD_RUN_FAILED,
            }
        else:
            after = f"{name}!"
            states[after] = {"Type": "Fail", "Error": error, "Cause": cause}
        states[name] = {
            "Type": "Task",
            "Resource": "arn:aws:states:::dynamodb:updateItem",
            "Parameters": {
                "TableName": RUNS_TABLE,
                "Key": {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": STEP_SK_PREFIX + step.id}},
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

    # -- approval ----------------------------------------------------------------------------
    def approval_state(self, step: Step, states: dict[str, Any], top_level: bool) -> dict[str, Any]:
        """One task: the request to the notifier's queue, then wait (a token, no compute) for people.

        Approve answers success (on to the next step); reject answers ApprovalRejected and a cancel
        Cancelled (the run fails, or stays cancelled); the deadline is this state's timeout.
        """
        approval = step.approval or Approval()
        fail = self.fail_path(step, states, top_level)
        timed_out = f"{step.id}:{APPROVAL_TIMED_OUT}"
        cause = f"nobody decided approval {step.id} within {approval.timeout}s (timeout)"
        self.deadline_states(step, timed_out, APPROVAL_TIMED_OUT, cause, states, top_level)
        return {
            "Type": "Task",
            "Comment": step.name or f"approval step {step.id}",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": APPROVALS_QUEUE_URL,
                "MessageBody": {
                    "type": APPROVAL_MESSAGE_TYPE,
                    "token.$": "$$.Task.Token",
                    "run_id.$": "$$.Execution.Name",
                    "workflow": self.definition.name,
                    "step": step.id,
                    "entered_at.$": "$$.State.EnteredTime",
                    "timeout_seconds": approval.timeout,
                    "inputs.$": _inputs_expression(),
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

    def pause_defaults(self) -> dict[str, Any]:
        """Each pausing step's decision before any: no attempts recorded yet (the message reads it)."""
        return {
            self.pause_key(step): {"decision": "none", "attempts": 0}
            for step in self.definition.steps
            if step.on_failure == "pause"
        }

    def branch_end(self, states: dict[str, Any], step_id: str) -> str:
        name = f"{step_id}:continue"
        states[name] = {"Type": "Pass", "End": True}
        return name

    # -- layout -----------------------------------------------------------------------------
    def unit_name(self, unit: str | Parallel) -> str:
        if isinstance(unit, str):
            return unit
        # State names are at most 80 characters and unique across nested branches.
        self.parallel_count += 1
        return f"Parallel {self.parallel_count}: {self.first_step(unit)}"[:80]

    def first_step(self, unit: str | Parallel) -> str:
        return unit if isinstance(unit, str) else self.first_step(unit.branches[0][0])

    def sequence(
        self, units: list[str | Parallel], states: dict[str, Any], after: str | None, top_level: bool
    ) -> str:
        """Add states for `units`, ending at `after` (None: end of a branch); return the first name."""
        names = [self.unit_name(u) for u in units]
        for index, unit in enumerate(units):
            next_name = names[index + 1] if index + 1 < len(units) else after
            if isinstance(unit, str):
                state = self.step_state(self.definition.step(unit), states, next_name, top_level)
            else:
                state = self.parallel_state(unit, top_level)
            if next_name is None:
                state["End"] = True
            else:
                state["Next"] = next_name
            states[names[index]] = state
        return names[0]

    def parallel_state(self, block: Parallel, top_level: bool) -> dict[str, Any]:
        branches = []
        for branch in block.branches:
            branch_states: dict[str, Any] = {}
            start = self.sequence(list(branch), branch_states, None, top_level=False)
            branches.append({"StartAt": start, "States": branch_states})
        # Branch results are not needed: steps publish their outputs to the runs table.
        state: dict[str, Any] = {"Type": "Parallel", "Branches": branches, "ResultPath": None}
        if top_level:
            state["Catch"] = [
                {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RECORD_RUN_FAILED}
            ]
        return state

    def compile(self) -> dict[str, Any]:
        units = layout([s.id for s in self.definition.steps], self.definition.dependencies())
        states = self.run_record_states()
        first = self.sequence(units, states, RECORD_RUN_SUCCEEDED, top_level=True)
        states[RECORD_RUN_START]["Next"] = first
        pauses = self.pause_defaults()
        if pauses:
            states[MERGE]["Parameters"]["pauses"] = pauses
        if pauses or any(step.approval is not None for step in self.definition.steps):
            # A run fails from `waiting` too: a pause deadline, or a sibling branch failing meanwhile.
            failed = states[RECORD_RUN_FAILED]["Parameters"]
            failed["ConditionExpression"] = f"#status IN (:running, :waiting) AND {NO_CANCEL}"
            failed["ExpressionAttributeValues"][":waiting"] = {"S": "waiting"}
        return {
            "Comment": f"Flowdeck workflow {self.definition.name}: {self.definition.description}".strip(": "),
            "StartAt": NORMALIZE,
            "States": states,
        }


def compile_workflow(definition: WorkflowDefinition) -> dict[str, Any]:
    """ASL for one workflow, with ${RunsTableName} and ${StepsQueueUrl} left to substitute."""
    return _Compiler(definition).compile()


def render_definition(asl: dict[str, Any], substitutions: dict[str, str]) -> str:
    """Substitute ${Name} placeholders the way CDK's definition_substitutions does."""
    text = json.dumps(asl, indent=2)
    for name, value in substitutions.items():
        text = text.replace("${" + name + "}", value)
    return text
