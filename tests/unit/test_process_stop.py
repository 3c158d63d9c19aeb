"""run_process on a stop (graceful: SIGTERM, grace, SIGKILL) and a kill (SIGKILL at once)."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path

from flowdeck.runner.process import run_process

# Installs a SIGTERM handler that writes `term` (and exits unless told to linger), says `ready`, sleeps.
STEP = """
import pathlib, signal, sys, time
folder = pathlib.Path(sys.argv[1])
linger = sys.argv[2] == "linger"

def on_term(signum, frame):
    (folder / "term").write_text("got SIGTERM")
    if not linger:
        (folder / "cleaned").write_text("cleaned up")
        sys.exit(143)

signal.signal(signal.SIGTERM, on_term)
(folder / "ready").write_text("ready")
for _ in range(600):
    time.sleep(0.1)
"""


def when_exists(path: Path, then: threading.Event) -> threading.Thread:
    """Set `then` once `path` exists (the step has reached that point)."""

    def watch() -> None:
        for _ in range(3000):
            if path.exists():
                then.set()
                return
            time.sleep(0.01)

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    return thread


def start(tmp_path: Path, behaviour: str, stop: threading.Event, grace: float, kill: threading.Event):
    lines: list[tuple[str, str]] = []
    return run_process(
        [sys.executable, "-c", STEP, str(tmp_path), behaviour],
        dict(os.environ),
        tmp_path,
        600,
        lambda stream, text: lines.append((stream, text)),
        stop,
        grace=grace,
        kill=kill,
    )


def test_stop_sends_sigterm_and_the_step_cleans_up_within_its_grace(tmp_path: Path) -> None:
    stop, kill = threading.Event(), threading.Event()
    when_exists(tmp_path / "ready", stop)

    outcome = start(tmp_path, "exit", stop, grace=60, kill=kill)

    assert outcome.stopped and not outcome.timed_out
    assert (tmp_path / "cleaned").read_text() == "cleaned up"
    assert outcome.exit_code == 143


def test_a_step_that_ignores_sigterm_is_killed_after_its_grace(tmp_path: Path) -> None:
    stop, kill = threading.Event(), threading.Event()
    when_exists(tmp_path / "ready", stop)

    outcome = start(tmp_path, "linger", stop, grace=0.5, kill=kill)

    assert outcome.stopped
    assert (tmp_path / "term").exists()
    assert outcome.exit_code == -signal.SIGKILL


def test_kill_sends_sigkill_at_once_without_sigterm(tmp_path: Path) -> None:
    stop, kill = threading.Event(), threading.Event()
    when_exists(tmp_path / "ready", kill)

    outcome = start(tmp_path, "exit", stop, grace=60, kill=kill)

    assert outcome.stopped
    assert not (tmp_path / "term").exists()
    assert outcome.exit_code == -signal.SIGKILL


def test_kill_during_the_grace_period_ends_the_wait(tmp_path: Path) -> None:
    stop, kill = threading.Event(), threading.Event()
    when_exists(tmp_path / "ready", stop)
    # A force cancel after a graceful one: SIGTERM was sent, the step lingers, SIGKILL follows.
    when_exists(tmp_path / "term", kill)

    outcome = start(tmp_path, "linger", stop, grace=600, kill=kill)

    assert outcome.stopped
    assert (tmp_path / "term").exists()
    assert outcome.exit_code == -signal.SIGKILL
