"""Cancel a run (SPEC §3 `POST /runs/{id}/cancel`): graceful, force, or graceful then cleanup.

One conditional write records the cancel request on the run (only from queued, running or waiting:
a finished run is a 409) and leaves its status alone; the workers running its steps see it within
a fraction of a second and stop them (graceful and cleanup: SIGTERM, the step's grace period,
SIGKILL; force: SIGKILL at once). Waiting steps (approvals, paused) have their tokens failed here.
Cleanup mode then asks a worker to run the succeeded steps' `cleanup` commands. The run reads
`cancelled` only once none of its processes runs (flowdeck.control.cancelling.settle): at once for
a queued run or one with only waiting steps. A second cancel while one is under way is a 409, or,
with `mode: force`, turns a graceful cancel into a forced one.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from flowdeck.catalog import Catalog
from flowdeck.constants import DEFAULT_STEP_TIMEOUT_SECONDS
from flowdeck.control.cancelling import (
    CANCEL_REQUESTED_AT,
    CANCELLED_ERROR,
    cancel_under_way,
    escalate_to_force,
    fail_waiting_steps,
    request_cancel,
    settle,
)
from flowdeck.control.permissions import Permissions
from flowdeck.control.stop_fresh import stop_fresh_tasks
from flowdeck.errors import Conflict, RunNotFound
from flowdeck.messages import DEFAULT_GRACE_SECONDS
from flowdeck.runner.budget import execution_arn
from flowdeck.runner.cleanup import CLEANUP_TYPE, CleanupCommand, CleanupMessage
from flowdeck.stores.cancels import CancelRecords
from flowdeck.stores.executions import stop_execution
from flowdeck.stores.fresh_tasks import FreshTasks
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.cancel")

MAX_REASON = 500


class CancelRun(BaseModel):
    """Body of POST /runs/{id}/cancel."""

    model_config = ConfigDict(extra="forbid")
    mode: Literal["graceful", "force", "cleanup"] = "graceful"
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_REASON)


class CancelUnderWay(Conflict):
    """A cancel while another is under way (that is not a graceful one turned into force)."""

    code = "CancelUnderWay"


class Cancelled(BaseModel):
    """The 202 answer: the cancel is recorded; `status` is `cancelled` once no process of the run runs."""

    run_id: str
    # The run's status now: `cancelled` when nothing of it ran (queued, only waiting steps), else
    # the status it keeps until its last process has ended (`cancel_requested_at` shows the cancel).
    status: Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled", "timed_out"]
    mode: Literal["graceful", "force", "cleanup"]
    reason: str
    cancel_requested_at: str | None = None
    cleanup_status: str | None = None
    # True when this request turned a graceful cancel under way into a forced one.
    escalated: bool = False


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
        fresh_tasks: FreshTasks | None = None,
    ) -> None:
        self.catalog = catalog
        self.permissions = Permissions(catalog)
        self.runs = runs
        self.sfn = sfn
        self.sqs = sqs
        self.queue_url = steps_queue_url
        self.arn_prefix = state_machine_arn_prefix
        # Stops the Fargate tasks of fresh steps (None: no fresh cluster configured).
        self.fresh_tasks = fresh_tasks

    def cancel(self, run_id: str, request: CancelRun, caller: str) -> Cancelled:
        """Cancel the run: 404 when unknown, 403 when the caller may not, 409 when it has ended or a
        cancel is under way."""
        run = self._run(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        workflow = str(run.get("workflow", ""))
        self.permissions.check(workflow, "cancel", caller)
        reason = request.reason or f"cancelled by {caller}"
        cleanup = self.cleanup_message(run_id, workflow) if request.mode == "cleanup" else None
        if not self.record(run_id, request, reason, caller):
            return self.second_press(run_id, request, caller)
        fail_waiting_steps(self.runs, self.sfn, run_id, CANCELLED_ERROR, reason)
        self.stop_run(run, run_id, workflow, reason)
        self.stop_fresh_tasks(run_id, workflow, request.mode, reason)
        cleanup_status = self.queue_cleanup(run_id, cleanup) if cleanup is not None else None
        # Nothing of the run may run (queued, only waiting steps): then it reads cancelled at once.
        settle(self.runs, run_id)
        now = self._run(run_id) or {}
        return Cancelled(
            run_id=run_id,
            status=now.get("status", "cancelled"),
            mode=request.mode,
            reason=reason,
            cancel_requested_at=now.get(CANCEL_REQUESTED_AT),
            cleanup_status=now.get("cleanup_status", cleanup_status),
        )

    def second_press(self, run_id: str, request: CancelRun, caller: str) -> Cancelled:
        """A cancel on a run that is not cancellable now: escalate to force, or say what is under way."""
        run = self._run(run_id) or {}
        if not cancel_under_way(run):
            raise Conflict(f"run {run_id} is already {run.get('status', 'gone')}")
        under_way = (
            f"run {run_id} is already being cancelled ({run.get('cancel_mode')}, asked by "
            f"{run.get('cancelled_by') or 'unknown'} at {run.get(CANCEL_REQUESTED_AT)})"
        )
        if request.mode != "force":
            raise CancelUnderWay(f"{under_way}; ask with mode force to kill its steps at once")
        if run.get("cancel_mode") == "force" or not escalate_to_force(self.runs, run_id, caller):
            raise CancelUnderWay(f"{under_way}; its steps are being killed")
        log.info("run %s: cancel escalated to force by %s", run_id, caller)
        now = self._run(run_id) or run
        return Cancelled(
            run_id=run_id,
            status=now.get("status", "cancelled"),
            mode="force",
            reason=str(now.get("cancel_reason") or ""),
            cancel_requested_at=now.get(CANCEL_REQUESTED_AT),
            cleanup_status=now.get("cleanup_status"),
            escalated=True,
        )

    def queue_cleanup(self, run_id: str, cleanup: CleanupMessage) -> str:
        """Send the cleanup message (after the record: the worker's claim needs "pending" there).

        A send that fails is recorded as a failed cleanup, so it is shown rather than waited for forever.
        """
        try:
            self.sqs.send_message(QueueUrl=self.queue_url, MessageBody=cleanup.model_dump_json())
        except (ClientError, BotoCoreError) as exc:
            log.error("run %s: cleanup not queued: %s", run_id, exc)
            why = f"the cleanup could not be queued ({exc.__class__.__name__})"
            CancelRecords(self.runs).cleanup_not_queued(run_id, why)
            return "failed"
        return "pending"

    def _run(self, run_id: str) -> dict[str, Any] | None:
        return CancelRecords(self.runs).run(run_id)

    def record(self, run_id: str, request: CancelRun, reason: str, caller: str) -> bool:
        """The one write that decides: the cancel request, only while the run is not finished."""
        extra: dict[str, Any] = {}
        if request.mode == "cleanup":
            extra = {"cleanup_status": {"S": "pending"}, "cleanup": {"L": []}}
        return request_cancel(self.runs, run_id, request.mode, reason, caller, extra) is not None

    def stop_run(self, run: dict[str, Any], run_id: str, workflow: str, reason: str) -> None:
        """Stop the execution; a queued run has none yet, and a failure only delays the stop."""
        arn = run.get("execution_arn") or execution_arn(self.arn_prefix, workflow, run_id)
        try:
            stop_execution(self.sfn, arn, CANCELLED_ERROR, reason[:MAX_REASON])
        except ClientError as exc:
            log.warning("run %s: StopExecution failed: %s", run_id, exc.response["Error"]["Code"])
        except BotoCoreError as exc:
            log.warning("run %s: StopExecution failed: %s", run_id, exc.__class__.__name__)

    def stop_fresh_tasks(self, run_id: str, workflow: str, mode: str, reason: str) -> None:
        """StopTask the run's fresh tasks still starting, and with force every one (stop_fresh_tasks)."""
        definition = self.catalog.definitions.get(workflow)
        if self.fresh_tasks is not None and definition is not None:
            stop_fresh_tasks(self.fresh_tasks, self.runs, definition, run_id, mode, reason)

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
