"""Notice, while a step runs, that a cancel of its run was asked for (a small read of the run item).

Polled, not pushed: a worker has no address the API could reach, and a read every
WATCH_EVERY_SECONDS per running step is cheap next to the step's compute (docs/cancel.md has the
latency and cost on AWS). The first read is strongly consistent and made after the step's start was
recorded (or the start's own transaction checked the run), so a cancel that settled its run before
this step was claimed is always seen.
"""

from __future__ import annotations

import logging
import threading

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.control.cancelling import CANCEL_REQUESTED_AT
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.cancel")

WATCH_EVERY_SECONDS = 0.25
FORCE = "force"


class CancelWatch:
    """Polls the run's cancel; on a request sets `stop` (graceful, cleanup) and `kill` too (force)."""

    def __init__(
        self,
        runs: RunStore,
        run_id: str,
        stop: threading.Event,
        every: float = WATCH_EVERY_SECONDS,
        checked: bool = False,
    ) -> None:
        """`checked`: the step's start record already checked that no cancel was asked for."""
        self.runs = runs
        self.checked = checked
        self.run_id = run_id
        self.stop = stop
        self.kill = threading.Event()
        self.every = every
        # Why the run was cancelled, once seen (the step's recorded cause); None until then.
        self.reason: str | None = None
        self.mode: str | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True, name=f"cancel-watch-{run_id}")

    @property
    def cancelled(self) -> bool:
        return self.mode is not None

    def __enter__(self) -> CancelWatch:
        if not self.checked:  # at once: a step taken after its run's cancel never starts its process
            self.check(consistent=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        # On after a graceful request: a second press (force) kills during the grace period.
        while not self.kill.is_set() and not self._done.wait(self.every):
            self.check()

    def check(self, consistent: bool = False) -> bool:
        """Read the run once; True (and the events set) when a cancel of it was asked for."""
        try:
            state = self.runs.cancel_state(self.run_id, consistent=consistent)
        except (ClientError, BotoCoreError) as exc:
            log.warning("run %s: cannot read its cancel state: %s", self.run_id, exc)
            return False
        if not state.get(CANCEL_REQUESTED_AT) or not state.get("cancel_mode"):
            return False
        self.reason = str(state.get("cancel_reason") or "cancelled")
        self.mode = str(state["cancel_mode"])
        if self.mode == FORCE:
            self.kill.set()
        self.stop.set()
        return True
