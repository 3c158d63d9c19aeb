"""The step-container shim, for real: /bin/sh runs SHIM_SCRIPT as a step image's entry point would."""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from flowdeck.runner.process import run_process
from flowdeck.runner.shim import CONTROL, SHIM_SCRIPT, ShimLauncher, start_script


@pytest.fixture
def step_container(tmp_path: Path) -> Iterator[Path]:
    """A stand-in for the step's container: its shell running the shim over a shared folder."""
    shim = subprocess.Popen(
        ["/bin/sh", "-c", SHIM_SCRIPT],
        env={"PATH": os.environ["PATH"], "FLOWDECK_CONTROL": str(tmp_path / CONTROL)},
    )
    yield tmp_path
    shim.kill()
    shim.wait()


def lines_of(sink: list[tuple[str, str]], stream: str) -> list[str]:
    return [text for name, text in sink if name == stream]


def test_the_shim_runs_the_command_with_its_environment_and_folder_and_relays_output(
    step_container: Path,
) -> None:
    work = step_container / "work"
    work.mkdir()
    seen: list[tuple[str, str]] = []
    command = 'echo "hello $WHO from $(pwd)"; echo oops >&2; exit 3'

    outcome = run_process(
        ["/bin/sh", "-c", command],
        {"WHO": "it's me"},
        work,
        30,
        lambda stream, text: seen.append((stream, text)),
        threading.Event(),
        launch=ShimLauncher(step_container),
    )

    assert outcome.exit_code == 3
    assert not outcome.timed_out
    assert lines_of(seen, "stdout") == [f"hello it's me from {work}"]
    assert lines_of(seen, "stderr") == ["oops"]


def test_a_stop_reaches_the_step_through_the_signal_file(step_container: Path) -> None:
    stop = threading.Event()
    seen: list[tuple[str, str]] = []
    command = "trap 'echo got TERM; exit 143' TERM; echo ready; while :; do sleep 0.1; done"
    threading.Timer(1.0, stop.set).start()

    outcome = run_process(
        ["/bin/sh", "-c", command],
        {},
        step_container,
        30,
        lambda stream, text: seen.append((stream, text)),
        stop,
        grace=10,
        launch=ShimLauncher(step_container),
    )

    assert outcome.stopped
    assert outcome.exit_code == 143
    assert lines_of(seen, "stdout") == ["ready", "got TERM"]


def test_a_kill_ends_a_step_that_ignores_sigterm(step_container: Path) -> None:
    kill = threading.Event()
    threading.Timer(1.0, kill.set).start()

    outcome = run_process(
        ["/bin/sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
        {},
        step_container,
        30,
        lambda stream, text: None,
        threading.Event(),
        kill=kill,
        launch=ShimLauncher(step_container),
    )

    assert outcome.stopped
    assert outcome.exit_code == -9


def test_the_start_script_quotes_every_value():
    script = start_script(["printf", "%s", "a b"], {"X": "$(rm -rf /)"}, Path("/w d"))
    assert script == "cd '/w d' || exit 127\nexport X='$(rm -rf /)'\nexec printf %s 'a b'\n"
