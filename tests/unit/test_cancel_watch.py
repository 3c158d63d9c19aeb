"""CancelWatch: a cancel request (not a status) stops the step; a later force kills it in its grace period."""

from __future__ import annotations

import threading
import time
from typing import Any

from flowdeck.runner.cancel_watch import CancelWatch


class Runs:
    """The run's cancel fields as a worker reads them; records whether each read was consistent."""

    def __init__(self, state: dict[str, Any]) -> None:
        self.state = state
        self.reads: list[bool] = []

    def cancel_state(self, run_id: str, consistent: bool = False) -> dict[str, Any]:
        self.reads.append(consistent)
        return dict(self.state)


def until(event: threading.Event, timeout: float = 2.0) -> bool:
    return event.wait(timeout)


def test_a_cancel_requested_before_the_step_started_is_seen_by_a_consistent_first_read() -> None:
    runs = Runs(
        {"status": "running", "cancel_requested_at": "t", "cancel_mode": "graceful", "cancel_reason": "x"}
    )
    stop = threading.Event()

    with CancelWatch(runs, "r1", stop, every=0.01) as watch:  # type: ignore[arg-type]
        assert watch.cancelled and stop.is_set() and not watch.kill.is_set()
        assert watch.reason == "x"

    assert runs.reads[0] is True


def test_a_run_not_being_cancelled_is_left_alone_whatever_its_status() -> None:
    # A run cancelled otherwise (no request) or still running without one stops nothing.
    for state in ({"status": "running"}, {"status": "cancelled"}, {"cancel_mode": "graceful"}):
        stop = threading.Event()
        with CancelWatch(Runs(state), "r1", stop, every=0.01) as watch:  # type: ignore[arg-type]
            time.sleep(0.05)
            assert not watch.cancelled and not stop.is_set()


def test_force_after_graceful_kills_during_the_grace_period() -> None:
    runs = Runs({"status": "running"})
    stop = threading.Event()

    with CancelWatch(runs, "r1", stop, every=0.01) as watch:  # type: ignore[arg-type]
        runs.state |= {"cancel_requested_at": "t", "cancel_mode": "graceful"}
        assert until(stop)
        assert not watch.kill.is_set()
        runs.state["cancel_mode"] = "force"  # the second press
        assert until(watch.kill)
        assert watch.mode == "force"
    assert all(consistent is False for consistent in runs.reads[1:])
