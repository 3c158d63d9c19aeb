"""Notice, while a step runs, that its run was cancelled (a cheap read of the run item each second)."""

from __future__ import annotations

import logging
import threading

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.cancel")

WATCH_EVERY_SECONDS = 1.0
CANCELLED = "cancelled"
FORCE = "force"
CANCELLED_ERROR = "Cancelled"


class CancelWatch:
    """Polls the run's status; on a cancel sets `stop` (graceful, cleanup) or `kill` too (force)."""

    def __init__(
        self, runs: RunStore, run_id: str, stop: threading.Event, every: float = WATCH_EVERY_SECONDS
    ) -> None:
        self.runs = runs
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
        self.check()  # at once: a step taken after its run was cancelled never starts its process
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        while not self.cancelled and not self._done.wait(self.every):
            self.check()

    def check(self) -> bool:
        """Read the run once; True (and the events set) when it was cancelled by a person or tool."""
        try:
            state = self.runs.cancel_state(self.run_id)
        except (ClientError, BotoCoreError) as exc:
            log.warning("run %s: cannot read its status: %s", self.run_id, exc)
            return False
        # The budget guard records cancel_reason but no cancel_mode: it stops its steps itself.
        if state.get("status") != CANCELLED or not state.get("cancel_mode"):
            return False
        self.reason = str(state.get("cancel_reason") or "cancelled")
        self.mode = str(state["cancel_mode"])
        if self.mode == FORCE:
            self.kill.set()
        self.stop.set()
        return True
