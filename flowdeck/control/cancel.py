"""Cancel a run (SPEC §3 `POST /runs/{id}/cancel`): graceful, force, or graceful then cleanup.

One conditional write records the run cancelled (only from queued, running or waiting: a finished
run is a 409); the workers running its steps read that within a second and stop them (graceful and
cleanup: SIGTERM, the step's grace period, SIGKILL; force: SIGKILL at once) and answer their tokens,
so the execution's StopExecution lands. Waiting steps (approvals, paused) have their tokens failed
here. Cleanup mode then asks a worker to run the succeeded steps' `cleanup` commands.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from flowdeck.catalog import Catalog
from flowdeck.constants import DEFAULT_STEP_TIMEOUT_SECONDS, PK, RUN_SK, SK, STEP_SK_PREFIX
from flowdeck.errors import Conflict, RunNotFound
from flowdeck.runner.budget import execution_arn
from flowdeck.runner.cancel_watch import CANCELLED_ERROR
from flowdeck.runner.cleanup import CLEANUP_TYPE, CleanupCommand, CleanupMessage
from flowdeck.runner.messages import DEFAULT_GRACE_SECONDS
from flowdeck.stores.conditions import conditional
from flowdeck.stores.runs import RunStore, from_item
from flowdeck.stores.schema import WORKFLOW_STATUS, workflow_status

log = logging.getLogger("flowdeck.cancel")

CANCELLABLE = ("queued", "running", "waiting")
# Errors Step Functions answers for a token that no longer waits.
TOKEN_GONE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}
MAX_REASON = 500


class CancelRun(BaseModel):
    """Body of POST /runs/{id}/cancel."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["graceful", "force", "cleanup"] = "graceful"
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_REASON)


class Cancelled(BaseModel):
    """The 202 answer: the run is recorded cancelled; its steps stop within seconds."""

    run_id: str
    status: Literal["cancelled"] = "cancelled"
    mode: Literal["graceful", "force", "cleanup"]
    reason: str
    cleanup_status: str | None = None


class RunCanceller:
    """Records a run cancelled and tells everything that still works for it."""

    def __init__(
        self,
        catalog: Catalog,
        runs: RunStore,
        sfn: Any,
        sqs: Any,
        steps_queue_url: str,
        state_machine_arn_prefix: str,
    ) -> None:
        self.catalog = catalog
        self.runs = runs
        self.sfn = sfn
        self.sqs = sqs
        self.queue_url = steps_queue_url
        self.arn_prefix = state_machine_arn_prefix

    def cancel(self, run_id: str, request: CancelRun, caller: str) -> Cancelled:
        """Cancel the run: 404 when unknown, 409 when it has already ended."""
        run = self._run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        workflow = str(run.get("workflow", ""))
        reason = request.reason or f"cancelled by {caller}"
        cleanup = self.cleanup_message(run_id, workflow) if request.mode == "cleanup" else None
        self.record(run_id, workflow, request, reason, caller)
        self.fail_waiting_steps(run_id, reason)
        self.stop_execution(run, run_id, workflow, reason)
        cleanup_status = self.queue_cleanup(run_id, cleanup) if cleanup is not None else None
        return Cancelled(run_id=run_id, mode=request.mode, reason=reason, cleanup_status=cleanup_status)

    def queue_cleanup(self, run_id: str, cleanup: CleanupMessage) -> str:
        """Send the cleanup message (after the record: the worker's claim needs "pending" there).

        A send that fails is recorded as a failed cleanup, so it is shown rather than waited for forever.
        """
        try:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=cleanup.model_dump_json())
        except (ClientError, BotoCoreError) as exc:
            log.error("run %s: cleanup not queued: %s", run_id, exc)
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression="SET cleanup_status = :failed, cleanup_error = :why",
                ConditionExpression="cleanup_status = :pending",
                ExpressionAttributeValues={
                    ":failed": {"S": "failed"},
                    ":pending": {"S": "pending"},
                    ":why": {"S": f"the cleanup could not be queued ({exc.__class__.__name__})"},
                },
            )
            return "failed"
        return "pending"

    def _run(self, run_id: str) -> dict[str, Any] | None:
        answer = self.runs.client.get_item(
            TableName=self.runs.table, Key={PK: {"S": run_id}, SK: {"S": RUN_SK}}, ConsistentRead=True
        )
        item = answer.get("Item")
        return from_item(item) if item else None

    def record(self, run_id: str, workflow: str, request: CancelRun, reason: str, caller: str) -> None:
        """The one write that decides: status -> cancelled, only while the run is not finished."""
        names = {
            "#status": "status",
            "#mode": "cancel_mode",
            "#reason": "cancel_reason",
            "#by": "cancelled_by",
            "#ended_at": "ended_at",
            "#ws": WORKFLOW_STATUS,
        }
        values: dict[str, Any] = {
            ":cancelled": {"S": "cancelled"},
            ":mode": {"S": request.mode},
            ":reason": {"S": reason},
            ":by": {"S": caller},
            ":now": {"S": datetime.now(UTC).isoformat()},
            ":ws": {"S": workflow_status(workflow, "cancelled")},
        }
        values |= {f":s{i}": {"S": status} for i, status in enumerate(CANCELLABLE)}
        update = (
            "SET #status = :cancelled, #mode = :mode, #reason = :reason, #by = :by, "
            "#ended_at = :now, #ws = :ws"
        )
        if request.mode == "cleanup":
            update += ", cleanup_status = :pending, #cleanup = :none"
            names["#cleanup"] = "cleanup"
            values |= {":pending": {"S": "pending"}, ":none": {"L": []}}
        allowed = ", ".join(f":s{i}" for i in range(len(CANCELLABLE)))
        with conditional() as write:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression=update,
                ConditionExpression=f"#status IN ({allowed})",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        if not write.held:
            now = self._run(run_id) or {}
            raise Conflict(f"run {run_id} is already {now.get('status', 'gone')}")

    def fail_waiting_steps(self, run_id: str, reason: str) -> None:
        """Fail the token of each waiting step (approval, paused) and record the step cancelled."""
        _, steps, _ = self.runs.get_run_items(run_id)
        for step_id, item in steps.items():
            token = item.get("wait_token")
            if item.get("status") != "waiting" or not isinstance(token, str):
                continue
            try:
                self.sfn.send_task_failure(taskToken=token, error=CANCELLED_ERROR, cause=reason[:MAX_REASON])
            except ClientError as exc:
                if exc.response["Error"]["Code"] not in TOKEN_GONE:
                    log.warning("run %s: step %s token not failed: %s", run_id, step_id, exc)
            with conditional():  # a step no longer waiting keeps its record
                self.runs.client.update_item(
                    TableName=self.runs.table,
                    Key={PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step_id}},
                    UpdateExpression=(
                        "SET #status = :cancelled, #error = :error, #cause = :cause, ended_at = :now"
                    ),
                    ConditionExpression="#status = :waiting",
                    ExpressionAttributeNames={"#status": "status", "#error": "error", "#cause": "cause"},
                    ExpressionAttributeValues={
                        ":cancelled": {"S": "cancelled"},
                        ":waiting": {"S": "waiting"},
                        ":error": {"S": CANCELLED_ERROR},
                        ":cause": {"S": reason},
                        ":now": {"S": datetime.now(UTC).isoformat()},
                    },
                )

    def stop_execution(self, run: dict[str, Any], run_id: str, workflow: str, reason: str) -> None:
        """Stop the execution; a queued run has none yet, and a failure only delays the stop."""
        arn = run.get("execution_arn") or execution_arn(self.arn_prefix, workflow, run_id)
        try:
            self.sfn.stop_execution(executionArn=arn, error=CANCELLED_ERROR, cause=reason[:MAX_REASON])
        except ClientError as exc:
            if exc.response["Error"]["Code"] != "ExecutionDoesNotExist":
                log.warning("run %s: StopExecution failed: %s", run_id, exc.response["Error"]["Code"])
        except BotoCoreError as exc:
            log.warning("run %s: StopExecution failed: %s", run_id, exc.__class__.__name__)

    def cleanup_message(self, run_id: str, workflow: str) -> CleanupMessage:
        """Every declared cleanup of the run's workflow, for the worker that runs them."""
        definition = self.catalog.get(workflow)
        commands = [
            CleanupCommand(
                step=step.id,
                run=step.cleanup,
                env=dict(step.env),
                timeout=step.timeout or DEFAULT_STEP_TIMEOUT_SECONDS,
                grace_period=step.grace_period if step.grace_period is not None else DEFAULT_GRACE_SECONDS,
            )
            for step in definition.steps
            if step.cleanup
        ]
        settle = max(
            (
                s.grace_period if s.grace_period is not None else DEFAULT_GRACE_SECONDS
                for s in definition.steps
            ),
            default=DEFAULT_GRACE_SECONDS,
        )
        return CleanupMessage(
            type=CLEANUP_TYPE,
            run_id=run_id,
            workflow=workflow,
            retention_hours=definition.runtime_config.retention_hours,
            steps=commands,
            settle_seconds=settle,
        )
