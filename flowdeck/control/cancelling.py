"""A cancel under way (SPEC §2): asked for first, recorded `cancelled` only once nothing of the run runs.

A cancel (a person's, or the budget guard's) writes `cancel_requested_at`, `cancel_mode`,
`cancel_reason` and `cancelled_by` on the run and leaves its status alone. Workers see the request
and stop their steps; every change that could be the last process ending (a step leaving `running`,
the cleanup finishing, the request itself) calls `settle`, which records the run `cancelled` with
`ended_at` at that moment, by one conditional write, once no step runs and no cleanup is pending.
`settle` is idempotent: the run-events reaction calls it for every such change, at least once.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.clock import now_iso
from flowdeck.constants import PK
from flowdeck.stores.cancels import CANCEL_REQUESTED_AT, CancelRecords
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.cancel")

# What a run (and each step still running under a cancel) shows of the cancel: when, how, who, why.
CANCEL_FIELDS = (CANCEL_REQUESTED_AT, "cancel_mode", "cancelled_by", "cancel_reason")
# A run in one of these may be cancelled; a cancel under way keeps it there until settled.
UNDER_WAY = ("queued", "running", "waiting")
# A cleanup in one of these still has (or may start) a process of the run.
CLEANUP_OPEN = ("pending", "running")
CANCELLED = "cancelled"
CANCELLED_ERROR = "Cancelled"
MAX_CAUSE = 500


def cancel_under_way(run: dict[str, Any] | None) -> bool:
    """True for a run whose cancel was asked for and that is not recorded ended yet."""
    return run is not None and bool(run.get(CANCEL_REQUESTED_AT)) and run.get("status") in UNDER_WAY


def request_cancel(
    runs: RunStore,
    run_id: str,
    mode: str,
    reason: str,
    by: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Record the cancel request, status untouched: the run after it, None if ended or already asked."""
    # `extra`: more attribute names -> DynamoDB values set with it (cleanup, the budget's error).
    fields = {CANCEL_REQUESTED_AT: now_iso(), "cancel_mode": mode, "cancel_reason": reason}
    fields["cancelled_by"] = by
    return CancelRecords(runs).request(run_id, fields, extra or {}, UNDER_WAY)


def escalate_to_force(runs: RunStore, run_id: str, by: str) -> bool:
    """A second press: a graceful (or cleanup) cancel under way becomes force; False if it cannot."""
    return CancelRecords(runs).escalate(run_id, by, now_iso(), UNDER_WAY)


def fail_waiting_steps(runs: RunStore, sfn: Any, run_id: str, error: str, reason: str) -> None:
    """Fail the token of each waiting step (approval, paused) and record the step cancelled."""
    records, tokens = CancelRecords(runs), TaskTokens(sfn)
    _, steps, _ = runs.get_run_items(run_id)
    for step_id, item in steps.items():
        token = item.get("wait_token")
        if item.get("status") != "waiting" or not isinstance(token, str):
            continue
        try:
            tokens.fail(token, error, reason[:MAX_CAUSE])
        except ClientError as exc:
            log.warning("run %s: step %s token not failed: %s", run_id, step_id, exc)
        except BotoCoreError as exc:
            log.warning("run %s: step %s token not failed: %s", run_id, step_id, exc.__class__.__name__)
        records.end_waiting_step(run_id, step_id, CANCELLED, error, reason, now_iso())


def settle(runs: RunStore, run_id: str) -> bool:
    """Record the run `cancelled` if its cancel is under way and nothing of it runs; True once cancelled."""
    # Safe any number of times, from anywhere: the condition keeps a run ended otherwise (or settled).
    run, steps, _ = runs.get_run_items(run_id)
    if run is None:
        return False
    if not cancel_under_way(run):
        return run.get("status") == CANCELLED
    running = sorted(step for step, item in steps.items() if item.get("status") == "running")
    if running or run.get("cleanup_status") in CLEANUP_OPEN:
        return False
    workflow = str(run.get("workflow", ""))
    settled = CancelRecords(runs).settle(run_id, workflow, CANCELLED, now_iso(), UNDER_WAY, CLEANUP_OPEN)
    if settled:
        log.info("run %s: cancelled (no process of it runs any more)", run_id)
    return settled


class CancelSettler:
    """The run-events reactions that settle a cancel: after the request, each step end, the cleanup."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def on_run_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """The request itself (a run with nothing running) or the cleanup ending may be the last word."""
        if cancel_under_way(new):
            settle(self.runs, str(new[PK]))

    def on_step_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A step that stopped running may have been the run's last process."""
        if (old or {}).get("status") != "running" or new.get("status") == "running":
            return
        run_id = str(new[PK])
        # A small read first: most steps end in runs that nobody cancels.
        if cancel_under_way(self.runs.cancel_state(run_id, consistent=True)):
            settle(self.runs, run_id)
