"""Per-workflow concurrency (runtime_config.concurrency): max_runs at a time; the rest queue or are refused.

Slots are a set per limited workflow (one item in the runs table, pk CONCURRENCY#<wf>, sk SLOTS,
attribute `holders`): adding or removing a run id is idempotent, and the add is conditional on
the set's size, so concurrent starts never exceed the limit (no read-then-write).
A queued run is a RUN item with status queued and its execution input; `promote` starts the
oldest queued runs while slots are free. A run frees its slot when its record ends (run events).
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.constants import PK
from flowdeck.control.workflow_state import WorkflowStates
from flowdeck.definition.models import WorkflowDefinition
from flowdeck.errors import Conflict
from flowdeck.status import FINISHED_RUN_STATUSES, RunStatus
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import (
    COST_USD,
    RUN_COST_USD,
    RUN_KIND,
    RUN_STARTED_AT,
    WORKFLOW_STATUS,
    workflow_status,
)
from flowdeck.stores.slots import Slot, SlotStore

logger = logging.getLogger(__name__)

# A queued run keeps the execution input it will start with, and when it was queued.
START_JSON = "start_json"
QUEUED_AT = "queued_at"
# A run recorded by its start with no execution this long after is one whose starter died in between.
START_GRACE_SECONDS = 300


class ConcurrencyLimit(Conflict):
    """POST /workflows/{wf}/runs of a workflow at its limit with on_limit: reject."""

    code = "ConcurrencyLimit"


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def now_iso() -> str:
    # Microseconds: runs queued in one burst keep their order (the queue reads them by this time).
    return datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def start_record(
    definition: WorkflowDefinition,
    run_id: str,
    payload: dict[str, Any],
    status: RunStatus,
    now: str | None = None,
) -> dict[str, Any]:
    """What a start records before its execution runs: the fields RecordRunStart would write.

    Its status, trigger, who started it, its inputs and its plan (every step pending until its item
    exists); cost 0 and both start times, so history's indexes list it at once.
    """
    now = now or now_iso()
    return {
        "run_id": run_id,
        "kind": RUN_KIND,
        "workflow": definition.name,
        "status": status.value,
        WORKFLOW_STATUS: workflow_status(definition.name, status.value),
        "trigger": str(payload["trigger"]),
        "started_by": str(payload["started_by"]),
        "trigger_detail": str(payload.get("trigger_detail", "")),
        # A queued run's started_at is its queue time until it is promoted (history sorts on it).
        "started_at": now,
        RUN_STARTED_AT: now,
        COST_USD: 0,
        RUN_COST_USD: 0,
        # Compact, as the state machine's States.JsonToString writes it.
        "inputs_json": json.dumps(payload.get("inputs", {}), separators=(",", ":")),
        "plan": [{"id": step.id, "kind": step.kind} for step in definition.steps],
    }


class ConcurrencyControl:
    """Takes and frees slots, queues runs over the limit, and starts queued runs in order."""

    def __init__(self, runs: RunStore, executions: Executions) -> None:
        self.runs = runs
        self.store = SlotStore(runs)
        self.executions = executions

    # -- slots ------------------------------------------------------------------------------
    def acquire(self, workflow: str, run_id: str, max_runs: int) -> Slot | None:
        """Take a slot for the run (idempotent: a holder keeps its one slot); None at the limit."""
        return self.store.acquire(workflow, run_id, max_runs)

    def release(self, workflow: str, run_id: str) -> bool:
        """Free the run's slot (idempotent); False when the workflow has no slots item (unlimited)."""
        return self.store.release(workflow, run_id)

    def slots(self, workflow: str) -> tuple[set[str], int] | None:
        """(holders, max_runs) of the workflow, None when it has no slots item."""
        return self.store.slots(workflow)

    # -- starting ---------------------------------------------------------------------------
    def start(self, definition: WorkflowDefinition, run_id: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Start the run within the workflow's limit: started, queued, or refused (ConcurrencyLimit).

        Every start records the run before StartExecution, so it is readable when this answers.
        """
        workflow, limit = definition.name, definition.runtime_config.concurrency
        if limit.max_runs == 0:
            return self._record_and_start(definition, run_id, payload, None)
        existing = self.run_item(run_id)
        if existing is not None and existing.get("status"):
            # A repeat (same idempotency key) of a run already recorded: it names that run as it is
            # now, and a queued one keeps its place in the queue.
            return {"run_id": run_id, "created": False, "status": existing["status"]}
        slot = self.acquire(workflow, run_id, limit.max_runs)
        if slot is not None:
            return self._record_and_start(definition, run_id, payload, slot)
        if limit.on_limit == "reject":
            raise ConcurrencyLimit(
                f"workflow {workflow!r} allows {limit.max_runs} run(s) at a time "
                "(runtime_config.concurrency.max_runs) and is at that limit; try again when one ends"
            )
        created = self.enqueue(definition, run_id, payload)
        status = RunStatus.QUEUED.value
        try:
            # A slot may have freed between the failed acquire and the queued record: nobody else
            # would start this run then.
            if run_id in self.promote(workflow):
                status = RunStatus.RUNNING.value
        except (ClientError, BotoCoreError):
            logger.warning(
                "promoting %s after queueing %s failed; the next run to end retries", workflow, run_id
            )
        return {"run_id": run_id, "created": created, "status": status}

    def _record_and_start(
        self, definition: WorkflowDefinition, run_id: str, payload: dict[str, Any], slot: Slot | None
    ) -> dict[str, Any]:
        """Record the run (running, every step pending), then start its execution."""
        old = self.runs.record_start(run_id, start_record(definition, run_id, payload, RunStatus.RUNNING))
        if old is not None and old.get("status") in FINISHED_RUN_STATUSES:
            # A repeat of a run that already ended: its answer is how it ended; nothing starts again.
            if slot is Slot.NEW:
                self.release(definition.name, run_id)
            return {"run_id": run_id, "created": False, "status": old["status"]}
        created = self._start_holding(definition.name, run_id, payload, slot)
        status = (old or {}).get("status") or RunStatus.RUNNING.value
        return {"run_id": run_id, "created": created, "status": status}

    def _start_holding(self, workflow: str, run_id: str, payload: dict[str, Any], slot: Slot | None) -> bool:
        """Start a recorded run's execution; if that fails, record the run failed and free its slot.

        Failed rather than deleted: the record may already have been read (a promoted run was listed
        queued before), and the failed run explains itself (error StartFailed, the reason), ends its
        slot through the same run-events reaction as any run, and can be retried.
        """
        try:
            created = self.executions.start(workflow, run_id, payload)
        except Exception as exc:
            reason = f"the execution could not be started: {exc.__class__.__name__}: {exc}"
            if self.runs.record_start_failed(run_id, workflow, reason, now_iso()) and slot is not None:
                self.release(workflow, run_id)
            raise
        if not created and slot is Slot.NEW:
            # A repeat of a run that already ended: its end freed its slot before this took it again.
            run = self.run_item(run_id)
            if run is not None and run.get("status") in FINISHED_RUN_STATUSES:
                self.release(workflow, run_id)
        return created

    def run_item(self, run_id: str) -> dict[str, Any] | None:
        return self.store.run_item(run_id)

    def enqueue(self, definition: WorkflowDefinition, run_id: str, payload: dict[str, Any]) -> bool:
        """Record the run as queued, with the input it will start with; False if recorded before."""
        now = now_iso()
        fields = start_record(definition, run_id, payload, RunStatus.QUEUED, now) | {
            QUEUED_AT: now,
            START_JSON: json.dumps(payload),
        }
        return self.runs.record_start(run_id, fields) is None

    # -- promoting --------------------------------------------------------------------------
    def queued_runs(self, workflow: str) -> list[dict[str, Any]]:
        """The workflow's queued runs, oldest first (index reads: a run may already have moved on)."""
        queued = RunStatus.QUEUED.value
        return self.store.queued_runs(workflow, queued, workflow_status(workflow, queued))

    def mark_promoted(self, workflow: str, run_id: str) -> bool:
        """Claim a queued run for starting; False when it is no longer queued (cancelled, started).

        The claim records it running from now (its start time, no longer the queue time), before
        StartExecution, so a promoted run reads running at once; RecordRunStart keeps these fields.
        """
        running = RunStatus.RUNNING.value
        return self.store.mark_promoted(
            run_id, RunStatus.QUEUED.value, running, workflow_status(workflow, running), now_iso()
        )

    def promote(self, workflow: str) -> list[str]:
        """Start the oldest queued runs while slots are free (idempotent); the run ids started."""
        slots = self.slots(workflow)
        if slots is None or not WorkflowStates(self.runs).get(workflow)["active"]:
            # Paused: queued runs keep their place and start on resume (flowdeck.control.workflow_state).
            return []
        holders, max_runs = slots
        queued = self.queued_runs(workflow)
        if queued and len(holders) >= max_runs:
            holders -= self.reclaim(workflow, holders)
        started: list[str] = []
        for run in queued:
            if len(holders) >= max_runs and run["run_id"] not in holders:
                break  # full: later runs wait their turn (no write that would fail anyway)
            run_id = run["run_id"]
            slot = self.acquire(workflow, run_id, max_runs)
            if slot is None:
                break
            holders.add(run_id)
            if not self.mark_promoted(workflow, run_id):
                # Cancelled while queued (or started by a concurrent promote): keep only slots in use.
                if slot is Slot.NEW:
                    self.release(workflow, run_id)
                    holders.discard(run_id)
                continue
            try:
                self._start_holding(workflow, run_id, json.loads(run[START_JSON]), slot)
            except (ClientError, BotoCoreError):
                # Recorded failed with the reason (its slot freed): the runs behind it still start.
                logger.exception("queued run %s of %s could not be started", run_id, workflow)
                holders.discard(run_id)
                continue
            started.append(run_id)
        return started

    def reclaim(self, workflow: str, holders: set[str]) -> set[str]:
        """Free the slots of holders that ended without their end reaching the stream reaction.

        A run whose record is final (its release was lost), or whose execution ended while its record
        says running (aborted from the console, or a state machine change): nothing else would free it.
        Checked only when runs wait for a full workflow.
        """
        freed = {run_id for run_id in sorted(holders) if self.holder_gone(run_id)}
        for run_id in freed:
            logger.warning("freeing the slot of %s run %s: it ended without releasing it", workflow, run_id)
            self.release(workflow, run_id)
        return freed

    def holder_gone(self, run_id: str) -> bool:
        run = self.run_item(run_id)
        if run is None or run.get("status") == RunStatus.QUEUED:
            return False  # starting: the execution has not recorded the run yet
        if run.get("status") in FINISHED_RUN_STATUSES:
            return True
        if not run.get("execution_arn"):
            return self.never_started(run)
        status = self.executions.status(run["execution_arn"])
        return status is not None and status != "RUNNING"

    def never_started(self, run: dict[str, Any]) -> bool:
        """A run recorded by its start whose execution never began (the caller died in between).

        Only once the record is START_GRACE_SECONDS old and no execution of its name exists: the run
        is then recorded failed (StartFailed), which frees its slot. Younger records are starting.
        """
        started = parse_iso(run.get("started_at"))
        if started is None or (datetime.now(UTC) - started).total_seconds() < START_GRACE_SECONDS:
            return False
        workflow, run_id = str(run["workflow"]), str(run["run_id"])
        if self.executions.status(self.executions.execution_arn(workflow, run_id)) is not None:
            return False  # it exists: its RecordRunStart has not run yet
        reason = f"no execution started within {START_GRACE_SECONDS} s of the run's start record"
        return self.runs.record_start_failed(run_id, workflow, reason, now_iso())

    # -- run events -------------------------------------------------------------------------
    def on_run_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """Reaction: a run that ended frees its slot, and the next queued runs start."""
        if new.get("status") not in FINISHED_RUN_STATUSES or (
            old is not None and old.get("status") in FINISHED_RUN_STATUSES
        ):
            return
        workflow, run_id = new.get("workflow"), new.get("run_id") or new.get(PK)
        if not workflow or not run_id:
            return
        if self.release(str(workflow), str(run_id)):
            self.promote(str(workflow))
