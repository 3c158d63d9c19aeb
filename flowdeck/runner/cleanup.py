"""Cancel with cleanup: run each succeeded step's `cleanup` command, newest first, in the run's record.

The cancel endpoint records the cancel with cleanup_status "pending" and sends one message
`{"type": "cleanup", ...}` on the steps queue. The worker that takes it claims the cleanup (pending ->
running, a conditional write: a second delivery does nothing), waits until no step of the run still
runs, then runs the cleanups one by one, each with its own logs (step id `cleanup:<step>`). A failed
cleanup is recorded failed and the others still run; the run's cleanup_status ends failed then. The
run reads `cancelled` once the cleanup has ended (flowdeck.control.cancelling).

A worker that dies during the cleanup must not leave it `running` forever. While it works, the
worker keeps the message invisible and beats `cleanup_heartbeat_at` on the run; it deletes the message
only when done. A dead worker's message comes back: the worker that then takes it finds the claim
running with no beat for CLEANUP_STALE_SECONDS and records the cleanup failed, WorkerLost.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import UTC, datetime
from typing import Any, Final, Literal, Protocol

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import BaseModel, ConfigDict, Field

from flowdeck.clock import now_iso
from flowdeck.config import Settings
from flowdeck.messages import DEFAULT_GRACE_SECONDS, StepMessage, StepSpec
from flowdeck.runner.logs import LogWriter
from flowdeck.runner.periodic import Periodic
from flowdeck.runner.process import LineSink, prepare_scratch, run_process, step_environment
from flowdeck.stores.cleanups import CleanupRecords
from flowdeck.stores.items import to_attribute
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.cleanup")

CLEANUP_TYPE: Final = "cleanup"
CLEANUP_STEP_PREFIX = "cleanup:"
# Past the largest grace period, how long to wait for the run's steps to end before cleaning up anyway.
SETTLE_MARGIN_SECONDS = 15.0
SETTLE_POLL_SECONDS = 0.5
# The cleanup's holder beats this often (run item and message visibility); a claim with no beat for
# CLEANUP_STALE_SECONDS is a dead worker's. The message stays invisible CLEANUP_VISIBILITY_SECONDS past
# each beat, so a dead worker's message is back within that.
CLEANUP_HEARTBEAT_SECONDS = 2.0
CLEANUP_VISIBILITY_SECONDS = 10
CLEANUP_STALE_SECONDS = 10.0
WORKER_LOST = "WorkerLost"


class CleanupCommand(BaseModel):
    """One step's declared cleanup, as the cancel endpoint read it from the definition."""

    model_config = ConfigDict(extra="ignore")
    step: str
    run: str
    env: dict[str, str] = Field(default_factory=dict)
    timeout: int
    grace_period: int = DEFAULT_GRACE_SECONDS


class CleanupMessage(BaseModel):
    """The steps-queue message that asks a worker to clean up a cancelled run."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["cleanup"]
    run_id: str
    workflow: str
    retention_hours: int = 24
    # Every step that declares `cleanup`, in definition order; only the succeeded ones run.
    steps: list[CleanupCommand] = Field(default_factory=list)
    # The longest grace period of the run's steps: how long a cancelled step may still be ending.
    settle_seconds: float = DEFAULT_GRACE_SECONDS


def message_type(body: str) -> str | None:
    """A steps-queue message's top-level `type` (step messages have none), or None."""
    try:
        data = json.loads(body)
    except ValueError:
        return None
    kind = data.get("type") if isinstance(data, dict) else None
    return kind if isinstance(kind, str) else None


def cleanup_step_id(step: str) -> str:
    """The id a cleanup's logs are stored under: `flowdeck logs RUN --step cleanup:apply`."""
    return CLEANUP_STEP_PREFIX + step


def cleanup_order(
    step_items: dict[str, dict[str, Any]], commands: list[CleanupCommand]
) -> list[CleanupCommand]:
    """The cleanups to run: steps that succeeded and declare one, the last to finish first."""
    done = [c for c in commands if step_items.get(c.step, {}).get("status") == "succeeded"]
    # Definition order breaks ties, reversed with the rest (a later step is undone first).
    ranked = sorted(
        enumerate(done), key=lambda pair: (step_items[pair[1].step].get("ended_at") or "", pair[0])
    )
    return [command for _, command in reversed(ranked)]


class Lease(Protocol):
    """The queue message a cleanup came in: kept invisible while it runs, deleted once it is over."""

    def extend(self, seconds: int) -> None: ...

    def delete(self) -> None: ...


class NoLease:
    """A cleanup handed over directly (tests, tools): nothing to keep or delete."""

    def extend(self, seconds: int) -> None:
        return None

    def delete(self) -> None:
        return None


class QueueLease:
    """One received steps-queue message."""

    def __init__(self, sqs: Any, queue_url: str, receipt: str) -> None:
        self.sqs = sqs
        self.queue_url = queue_url
        self.receipt = receipt

    def extend(self, seconds: int) -> None:
        self.sqs.change_message_visibility(
            QueueUrl=self.queue_url, ReceiptHandle=self.receipt, VisibilityTimeout=seconds
        )

    def delete(self) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=self.receipt)


class CleanupHeartbeat(Periodic):
    """While a cleanup runs: beat `cleanup_heartbeat_at` on the run and keep the message invisible."""

    def __init__(self, runner: CleanupRunner, run_id: str, lease: Lease) -> None:
        super().__init__(CLEANUP_HEARTBEAT_SECONDS, name=f"cleanup-beat-{run_id}")
        self.runner = runner
        self.run_id = run_id
        self.lease = lease

    def beat(self) -> bool:
        try:
            self.lease.extend(CLEANUP_VISIBILITY_SECONDS)
        except (ClientError, BotoCoreError) as exc:
            log.warning("run %s: cleanup message not kept: %s", self.run_id, exc)
        self.runner.update_run(self.run_id, "SET cleanup_heartbeat_at = :now", {}, {":now": {"S": now_iso()}})
        return True


class CleanupRunner:
    """Runs a cleanup message end to end: claim, wait for the steps to end, run, record."""

    def __init__(self, settings: Settings, runs: RunStore, logs: LogStore | None = None) -> None:
        self.settings = settings
        self.runs = runs
        self.logs = logs

    def handle(
        self, message: CleanupMessage, sink: LineSink | None = None, lease: Lease | None = None
    ) -> str | None:
        """Run the cleanups once; the overall cleanup_status, or None when another delivery has it."""
        lease = lease or NoLease()
        if not self.claim(message.run_id):
            if self.claim_is_over(message.run_id):
                lease.delete()
            return None
        with CleanupHeartbeat(self, message.run_id, lease):
            overall = self._run_all(message, sink)
        lease.delete()
        return overall

    def _run_all(self, message: CleanupMessage, sink: LineSink | None) -> str:
        step_items = self.settle(message)
        plan = cleanup_order(step_items, message.steps)
        entries = [{"step": c.step, "log_step": cleanup_step_id(c.step), "status": "pending"} for c in plan]
        self.update_run(
            message.run_id,
            "SET #cleanup = :entries",
            {"#cleanup": "cleanup"},
            {":entries": to_attribute(entries)},
        )
        earlier = self.runs.step_outputs(message.run_id)
        inputs = self.run_inputs(message.run_id)
        failed = False
        for index, command in enumerate(plan):
            entry = self.run_one(message, command, earlier, inputs, index, sink)
            failed = failed or entry["status"] != "succeeded"
        overall = "failed" if failed else "succeeded"
        self.update_run(
            message.run_id,
            "SET cleanup_status = :status, cleanup_ended_at = :now",
            {},
            {":status": {"S": overall}, ":now": {"S": now_iso()}},
        )
        return overall

    # -- steps ----------------------------------------------------------------------------------
    def run_one(
        self,
        message: CleanupMessage,
        command: CleanupCommand,
        earlier: dict[str, dict[str, Any]],
        inputs: dict[str, Any],
        index: int,
        sink: LineSink | None,
    ) -> dict[str, Any]:
        """Run one cleanup command with its own logs; record and return its entry."""
        started_at = now_iso()
        log_step = cleanup_step_id(command.step)
        entry: dict[str, Any] = {"step": command.step, "log_step": log_step, "status": "running"}
        self.set_entry(message.run_id, index, entry | {"started_at": started_at})
        # Shaped as a step message so the step's environment, scratch space and log writer are reused.
        step_message = StepMessage(
            token=f"cleanup-{message.run_id}-{command.step}",
            run_id=message.run_id,
            workflow=message.workflow,
            step=log_step,
            retention_hours=message.retention_hours,
            inputs=inputs,
            spec=StepSpec(run=command.run, env=command.env, timeout=command.timeout),
        )
        writer = (
            LogWriter.for_step(self.logs, step_message) if sink is None and self.logs is not None else None
        )
        output: LineSink = sink or writer or (lambda stream, text: None)
        try:
            scratch = prepare_scratch(self.settings.scratch_dir, step_message, self.settings.workspace)
            env = step_environment(step_message, earlier, scratch) | {"FLOWDECK_CLEANUP_OF": command.step}
            outcome = run_process(
                command.run, env, scratch / "work", command.timeout, output, threading.Event()
            )
        finally:
            if writer is not None:
                writer.close()  # every line stored before the end is recorded
        entry |= {
            "started_at": started_at,
            "ended_at": now_iso(),
            "exit_code": outcome.exit_code,
            "duration_s": round(outcome.seconds, 3),
        }
        if outcome.timed_out:
            entry |= {"status": "failed", "error": "StepTimeout", "cause": f"ran past {command.timeout}s"}
        elif outcome.exit_code != 0:
            last = next((line for line in reversed(outcome.stderr_tail) if line.strip()), "")
            cause = f"exit code {outcome.exit_code}" + (f": {last}" if last else "")
            entry |= {"status": "failed", "error": "CleanupFailed", "cause": cause[:2000]}
        else:
            entry |= {"status": "succeeded"}
        self.set_entry(message.run_id, index, entry)
        return entry

    def settle(self, message: CleanupMessage) -> dict[str, dict[str, Any]]:
        """The run's step items once none is running (bounded: a step past its grace is SIGKILLed)."""
        deadline = time.monotonic() + message.settle_seconds + SETTLE_MARGIN_SECONDS
        while True:
            _, steps, _ = self.runs.get_run_items(message.run_id)
            running = [s for s, item in steps.items() if item.get("status") == "running"]
            if not running or time.monotonic() >= deadline:
                if running:
                    log.warning("run %s: cleaning up while %s still run", message.run_id, running)
                return steps
            time.sleep(SETTLE_POLL_SECONDS)

    def run_inputs(self, run_id: str) -> dict[str, Any]:
        run, _, _ = self.runs.get_run_items(run_id)
        try:
            inputs = json.loads((run or {}).get("inputs_json") or "{}")
        except ValueError:
            inputs = {}
        return inputs if isinstance(inputs, dict) else {}

    # -- the run record -------------------------------------------------------------------------
    def claim_is_over(self, run_id: str) -> bool:
        """Another claim of this cleanup: True once over (or its worker lost, now recorded), else False."""
        run, _, _ = self.runs.get_run_items(run_id)
        if run is None or run.get("cleanup_status") != "running":
            log.info("run %s: cleanup already done or not asked for; this delivery does nothing", run_id)
            return True
        beat = str(run.get("cleanup_heartbeat_at") or run.get("cleanup_started_at") or "")
        try:
            silent = (datetime.now(UTC) - datetime.fromisoformat(beat)).total_seconds()
        except ValueError:
            silent = CLEANUP_STALE_SECONDS
        if silent < CLEANUP_STALE_SECONDS:
            return False
        self.record_lost(run_id, run, beat, silent)
        return True

    def record_lost(self, run_id: str, run: dict[str, Any], beat: str, silent: float) -> None:
        """The holder died: its unfinished cleanups and the cleanup itself are failed, WorkerLost."""
        why = f"the worker running the cleanup was lost (no heartbeat for {silent:.0f}s)"
        entries = [
            entry
            if entry.get("status") in ("succeeded", "failed")
            else entry
            | {
                "status": "failed",
                "error": WORKER_LOST,
                "cause": why,
                "ended_at": now_iso(),
            }
            for entry in run.get("cleanup") or []
        ]
        if CleanupRecords(self.runs).record_lost(run_id, entries, f"{WORKER_LOST}: {why}", now_iso(), beat):
            log.warning("run %s: %s", run_id, why)

    def claim(self, run_id: str) -> bool:
        """cleanup_status pending -> running; False when another delivery claimed it first."""
        return CleanupRecords(self.runs).claim(run_id, datetime.now(UTC).isoformat())

    def set_entry(self, run_id: str, index: int, entry: dict[str, Any]) -> None:
        self.update_run(
            run_id,
            f"SET #cleanup[{index}] = :entry",
            {"#cleanup": "cleanup"},
            {":entry": to_attribute(entry)},
        )

    def update_run(self, run_id: str, expression: str, names: dict[str, str], values: dict[str, Any]) -> None:
        """One write to the run item while this cleanup holds it; a failure is logged (the record lags)."""
        # Only while `running`: a cleanup another worker recorded lost (this one was silent) stays so.
        try:
            held = CleanupRecords(self.runs).update_while_held(run_id, expression, names, values)
        except (ClientError, BotoCoreError) as exc:
            log.warning("run %s: cleanup record not written: %s", run_id, exc)
            return
        if not held:
            log.warning("run %s: the cleanup was recorded lost meanwhile; its record stays", run_id)
