"""A run or notify step: one task answered by a runner, with its retries and failure paths.

In pool mode the task is `sqs:sendMessage.waitForTaskToken` to the steps queue (a warm worker
answers); in fresh mode `ecs:runTask.waitForTaskToken` (statemachines.fresh_step: a new Fargate
task answers). A notify step is the same task (the runner renders and sends the message).
"""

from __future__ import annotations

from typing import Any

from flowdeck.constants import (
    DEFAULT_STEP_TIMEOUT_SECONDS,
    LOST_TOKEN,
    WORKER_STOPPED,
    WORKER_STOPPED_RETRIES,
)
from flowdeck.definition.models import Step, WorkflowDefinition
from statemachines.asl import (
    RECORD_RUN_FAILED,
    RUNS_TABLE,
    SEND_AND_WAIT,
    STEPS_QUEUE_URL,
    UPDATE_ITEM,
    Scope,
    branch_end,
    fail_path,
    inputs_expression,
    named_failure,
    step_key,
)
from statemachines.fresh_step import COLD_START_SECONDS, FRESH_START_ERRORS, RUN_TASK_AND_WAIT, fresh_task
from statemachines.pause import pause_states

WORKER_LOST = "WorkerLost"
# Where a fresh step whose task failed to start or stopped unanswered is recorded (its real error).
TASK_FAILED = "TaskFailed"
# Failures that end the run whatever the step says: a paused step never holds a cancelled run.
RUN_ENDING_ERRORS = ["BudgetExceeded", "Cancelled"]
# Backstop on top of the worker's own timeout, so a wedged worker cannot hold a run forever.
TIMEOUT_MARGIN_SECONDS = 60


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


def run_step_state(step: Step, scope: Scope, next_name: str | None) -> dict[str, Any]:
    """The worker's task, its retries, and where each kind of failure goes."""
    task = _worker_task(step, scope)
    # First, and whatever the step's own retries: a step handed back by a stopping worker (ECS
    # scale-in or deploy) runs again on another worker; Step Functions uses the first retrier that
    # matches, so a hand-back never spends the step's own retries.
    task["Retry"] = [
        {"ErrorEquals": [WORKER_STOPPED], "IntervalSeconds": 1, "MaxAttempts": WORKER_STOPPED_RETRIES}
    ]
    if step.retries.max:
        task["Retry"].append(
            {
                "ErrorEquals": ["States.ALL"],
                "IntervalSeconds": max(step.retries.interval, 1),
                "MaxAttempts": step.retries.max,
                "BackoffRate": step.retries.backoff,
            }
        )
    # A live worker reports its own failures, a timeout included (StepTimeout). A heartbeat
    # timeout, or no answer by the backstop timeout, means the worker is gone: the state
    # machine records that itself. (The emulator reports heartbeat timeouts as States.Timeout.)
    runner = "task" if scope.definition.mode_of(step) == "fresh" else "worker"
    cause = f"the {runner} running step {step.id} stopped answering (no heartbeat or no result in time)"
    recorder = f"{step.id}:{WORKER_LOST}"
    if step.on_failure == "pause":
        # A lost worker pauses the step too: a person decides, as for any other failure.
        then = pause_states(step, task, scope, next_name)
    elif step.on_failure == "continue":
        then = next_name or branch_end(scope, step.id)
    else:
        # Name the error for the run's failure record (it reads $.error), or leave the Parallel branch.
        then = named_failure(recorder, WORKER_LOST, cause, scope)
    scope.states[recorder] = _lost_worker_state(step, cause, then)
    task["Catch"] = _catchers(step, scope, next_name, recorder, then)
    if runner == "task":
        # Known at once, before any heartbeat timeout: recorded with ECS's error and cause.
        failed = f"{step.id}:{TASK_FAILED}"
        after = fail_path(step, scope) if step.on_failure == "fail" else then
        scope.states[failed] = _failed_task_state(step, after)
        task["Catch"].insert(1, {"ErrorEquals": FRESH_START_ERRORS, "ResultPath": "$.error", "Next": failed})
    return task


def watch_seconds(step: Step, definition: WorkflowDefinition) -> tuple[int, int]:
    """The task's HeartbeatSeconds and TimeoutSeconds: what a runner must beat within, and the backstop."""
    timeout = (step.timeout or DEFAULT_STEP_TIMEOUT_SECONDS) + TIMEOUT_MARGIN_SECONDS
    heartbeat = definition.runtime_config.heartbeat_seconds
    if definition.mode_of(step) == "fresh":
        # The clock runs from RunTask: placement and the image pull come before the first beat.
        timeout += COLD_START_SECONDS
        heartbeat += COLD_START_SECONDS
    # Step Functions refuses a heartbeat that is not shorter than the timeout.
    return min(heartbeat, timeout - 1), timeout


def _worker_task(step: Step, scope: Scope) -> dict[str, Any]:
    """The dispatch (pool message or fresh task), with the heartbeat and backstop timeout that watch it."""
    config = scope.definition.runtime_config
    heartbeat, timeout = watch_seconds(step, scope.definition)
    if scope.definition.mode_of(step) == "fresh":
        return {
            "Type": "Task",
            "Comment": step.name or f"{step.kind} step {step.id} (fresh task)",
            "Resource": RUN_TASK_AND_WAIT,
            "Parameters": fresh_task(step, scope.definition),
            "HeartbeatSeconds": heartbeat,
            "TimeoutSeconds": timeout,
            "ResultPath": None,
        }
    body: dict[str, Any] = {
        "token.$": "$$.Task.Token",
        "run_id.$": "$$.Execution.Name",
        "workflow": scope.definition.name,
        "step": step.id,
        "retry_count.$": "$$.State.RetryCount",
        "heartbeat_seconds": heartbeat,
        # Logs and artifacts of this run expire with the workflow's retention.
        "retention_hours": config.retention_hours,
        "inputs.$": inputs_expression(),
        "reuse.$": "$.meta.reuse",
        "spec": step_spec(step),
    }
    if config.max_cost_usd is not None:
        # A string, so the worker reads it as an exact Decimal (the budget guard compares money).
        body["max_cost_usd"] = str(config.max_cost_usd)
    return {
        "Type": "Task",
        "Comment": step.name or f"{step.kind} step {step.id}",
        "Resource": SEND_AND_WAIT,
        "Parameters": {"QueueUrl": STEPS_QUEUE_URL, "MessageBody": body},
        "HeartbeatSeconds": heartbeat,
        "TimeoutSeconds": timeout,
        # Outputs live in the runs table, not in the state: the state stays small (256 KiB limit).
        "ResultPath": None,
    }


def _catchers(
    step: Step, scope: Scope, next_name: str | None, recorder: str, then: str
) -> list[dict[str, Any]]:
    """A lost worker goes to its recorder; other failures were recorded by the worker and go on."""
    continues = step.on_failure == "continue"
    catchers: list[dict[str, Any]] = [
        {
            "ErrorEquals": ["States.HeartbeatTimeout", "States.Timeout"],
            "ResultPath": None if continues else "$.error",
            "Next": recorder,
        }
    ]
    # Go on (continue), record the run's failure (top level), or leave the Parallel branch with
    # the error, for the Parallel's Catch.
    if step.on_failure == "pause":
        catchers += [
            {"ErrorEquals": RUN_ENDING_ERRORS, "ResultPath": "$.error", "Next": fail_path(step, scope)},
            {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": then},
        ]
    elif continues:
        catchers.append(
            {
                "ErrorEquals": ["States.ALL"],
                "ResultPath": None,
                "Next": next_name or branch_end(scope, step.id),
            }
        )
    elif scope.top_level:
        catchers.append({"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": RECORD_RUN_FAILED})
    return catchers


def _failed_task_state(step: Step, then: str) -> dict[str, Any]:
    """Record a fresh step whose task never answered with the error in $.error (RunTask's, TaskStopped)."""
    state = _lost_worker_state(step, "", then)
    values = state["Parameters"]["ExpressionAttributeValues"]
    values[":error"] = {"S.$": "$.error.Error"}
    values[":cause"] = {"S.$": "$.error.Cause"}
    return state


def _lost_worker_state(step: Step, cause: str, then: str) -> dict[str, Any]:
    """Record a step whose worker can no longer report (dead worker, backstop timeout)."""
    return {
        "Type": "Task",
        "Resource": UPDATE_ITEM,
        "Parameters": {
            "TableName": RUNS_TABLE,
            "Key": step_key(step),
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
