"""A step paused on failure: record that it waits for a person, and return at once (no compute held).

The state machine sends a `type: wait` message with the task token of its `<step>:Paused` state; the
token waits there until a decision (flowdeck.control.pause), a cancel, or the pause deadline.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from flowdeck.clock import now_iso
from flowdeck.messages import WaitMessage
from flowdeck.status import FINISHED_RUN_STATUSES
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.pause")

RUN_NOT_RUNNING = "RunNotRunning"
# A run that ended (cancelled, failed) while its step's failure was on its way to the pause.


def wait_deadline(entered_at: str, timeout_seconds: int) -> str:
    """When the pause fails (the Paused state's TimeoutSeconds after it was entered), ISO 8601."""
    try:
        entered = datetime.fromisoformat(entered_at.replace("Z", "+00:00"))
    except ValueError:
        # Shown to people only (the state machine keeps the real deadline): never fail a pause on it.
        entered = datetime.now(UTC)
    if entered.tzinfo is None:
        entered = entered.replace(tzinfo=UTC)
    return (entered + timedelta(seconds=timeout_seconds)).isoformat()


class PauseRecorder:
    """Handles wait messages: the step `waiting` with its token, the run `waiting`."""

    def __init__(self, runs: RunStore, sfn: Any) -> None:
        self.runs = runs
        self.tokens = TaskTokens(sfn)

    def handle(self, message: WaitMessage) -> bool:
        """Record the wait; False when this delivery changes nothing (a duplicate, or the run ended)."""
        deadline = wait_deadline(message.entered_at, message.timeout_seconds)
        # The step first: its condition refuses a stale delivery, which must not touch the run either.
        if not self.runs.record_waiting(
            message.run_id, message.step, message.token, message.entered_at, deadline, message.allow_skip
        ):
            if self._run_status(message.run_id) in FINISHED_RUN_STATUSES:
                self._fail(message, "the run ended before the step's pause was recorded")
            else:
                log.info("run %s: step %s already left this pause", message.run_id, message.step)
            return False
        # From running, or waiting already (another branch's step is paused too).
        if not self.runs.set_run_status(message.run_id, message.workflow, "waiting", ("running", "waiting")):
            # Cancelled meanwhile: end the wait now so the execution ends (the emulator's stop waits for it).
            ended = {"decision": "cancel", "by": "flowdeck", "at": now_iso(), "comment": "the run had ended"}
            self.runs.record_decision(message.run_id, message.step, message.token, "cancelled", ended, {})
            self._fail(message, "the run is no longer running")
            return False
        log.info("run %s: step %s paused until %s", message.run_id, message.step, deadline)
        return True

    def _run_status(self, run_id: str) -> str | None:
        run = self.runs.get_run_items(run_id)[0] or {}
        status = run.get("status")
        return status if isinstance(status, str) else None

    def _fail(self, message: WaitMessage, cause: str) -> None:
        self.tokens.fail(message.token, RUN_NOT_RUNNING, cause)
