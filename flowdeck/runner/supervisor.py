"""Run one step's process: its environment (SPEC §1), output capture, timeout, outputs file."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from flowdeck.runner.messages import StepMessage

LineSink = Callable[[str, str], None]
"""Receives (stream, text) for every line a step prints; stream is "stdout" or "stderr"."""

KILL_GRACE_SECONDS = 5.0
TAIL_LINES = 20
# The worker's own configuration is not the step's business.
_PRIVATE_ENV_PREFIXES = ("FLOWDECK_",)


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class ProcessOutcome:
    exit_code: int | None
    timed_out: bool
    stopped: bool
    seconds: float
    stderr_tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))
    stdout_tail: deque[str] = field(default_factory=lambda: deque(maxlen=TAIL_LINES))


def _env_name(step_id: str) -> str:
    return "".join(ch if ch.isalnum() else "_" for ch in step_id).upper()


def step_environment(
    message: StepMessage, earlier: dict[str, dict[str, Any]], scratch: Path
) -> dict[str, str]:
    """The process environment of SPEC §1, over the worker's own (minus its private settings)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_PRIVATE_ENV_PREFIXES)}
    env |= message.spec.env
    env |= {
        "FLOWDECK_RUN_ID": message.run_id,
        "FLOWDECK_WORKFLOW": message.workflow,
        "FLOWDECK_STEP_ID": message.step,
        "FLOWDECK_ATTEMPT": str(message.attempt),
        "FLOWDECK_INPUTS": json.dumps(message.inputs),
        "FLOWDECK_OUTPUTS": str(scratch / "outputs.json"),
        "FLOWDECK_USAGE": str(scratch / "usage.jsonl"),
        "FLOWDECK_ARTIFACTS_DIR": str(scratch / "artifacts"),
    }
    for step_id, outputs in earlier.items():
        env[f"FLOWDECK_STEP_{_env_name(step_id)}_OUTPUTS"] = json.dumps(outputs)
    return env


def prepare_scratch(root: Path, message: StepMessage) -> Path:
    scratch = root / message.run_id / message.step / str(message.attempt)
    if scratch.exists():
        shutil.rmtree(scratch)
    (scratch / "artifacts").mkdir(parents=True)
    return scratch


def _pump(pipe: IO[bytes], stream: str, sink: LineSink, tail: deque[str]) -> None:
    for raw in iter(pipe.readline, b""):
        text = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        tail.append(text)
        sink(stream, text)
    pipe.close()


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


def run_process(
    argv: list[str] | str,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    sink: LineSink,
    stop: threading.Event,
) -> ProcessOutcome:
    """Run to completion, timeout or `stop`; the whole process group is ended on the way out."""
    started = time.monotonic()
    command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else argv
    process = subprocess.Popen(  # noqa: S603 - running the user's step is the point
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so timeouts reach grandchildren too
    )
    outcome = ProcessOutcome(exit_code=None, timed_out=False, stopped=False, seconds=0.0)
    if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE was asked for
        raise RuntimeError("the step's output pipes are missing")
    pumps = [
        threading.Thread(
            target=_pump, args=(process.stdout, "stdout", sink, outcome.stdout_tail), daemon=True
        ),
        threading.Thread(
            target=_pump, args=(process.stderr, "stderr", sink, outcome.stderr_tail), daemon=True
        ),
    ]
    for pump in pumps:
        pump.start()
    exited = threading.Event()

    def reap() -> None:
        process.wait()
        exited.set()

    threading.Thread(target=reap, daemon=True).start()
    deadline = started + timeout
    # Wake at once when the process exits; check for a stop request or the deadline meanwhile.
    while not exited.wait(min(0.1, max(deadline - time.monotonic(), 0.0))):
        if stop.is_set() or time.monotonic() >= deadline:
            outcome.stopped = stop.is_set()
            outcome.timed_out = not outcome.stopped
            _signal_group(process, signal.SIGTERM)
            if not exited.wait(KILL_GRACE_SECONDS):
                _signal_group(process, signal.SIGKILL)
                exited.wait()
            break
    outcome.seconds = time.monotonic() - started
    outcome.exit_code = process.returncode
    for pump in pumps:
        pump.join(timeout=5)
    return outcome


def read_outputs(path: Path) -> dict[str, Any]:
    """The step's FLOWDECK_OUTPUTS file: absent means no outputs; anything but an object is an error."""
    if not path.exists() or path.stat().st_size == 0:
        return {}
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, dict):
        raise ValueError("FLOWDECK_OUTPUTS must hold a JSON object")
    return data
