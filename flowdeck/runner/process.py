"""Run one step's process: its environment (SPEC §1), output capture, timeout, outputs file."""

from __future__ import annotations

import contextlib
import fcntl
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
from pathlib import Path
from typing import IO, Any, Protocol, runtime_checkable

from flowdeck.messages import StepMessage
from flowdeck.runner.logs import LineSplitter

LineSink = Callable[[str, str], None]
"""Receives (stream, text) for every line a step prints; stream is "stdout" or "stderr"."""


@runtime_checkable
class ChunkSink(Protocol):
    """Takes each pipe read whole (many lines), so the pump does no per-line work (the LogWriter)."""

    def feed(self, stream: str, chunk: bytes) -> None: ...


# One pipe read: the pump costs one call per read, not per line, so it keeps up with any step.
READ_CHUNK = 1024 * 1024
# A step only waits on its output when the pipe is full: with 1 MiB pipes (Linux's cap for
# unprivileged processes; 64 KiB by default) it runs on while a pump waits for the interpreter lock.
PIPE_BYTES = 1024 * 1024
# The end of each stream kept for the failure cause (its last TAIL_LINES lines).
TAIL_BYTES = 16 * 1024

KILL_GRACE_SECONDS = 5.0
TAIL_LINES = 20
# Earlier outputs larger than this reach a step as FLOWDECK_STEP_<ID>_OUTPUTS_FILE only.
MAX_ENV_OUTPUTS = 64 * 1024
# The worker's own configuration is not the step's business.
_PRIVATE_ENV_PREFIXES = ("FLOWDECK_",)


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
        "FLOWDECK_WORK_DIR": str(scratch / "work"),
    }
    for step_id, outputs in earlier.items():
        name = f"FLOWDECK_STEP_{_env_name(step_id)}_OUTPUTS"
        text = json.dumps(outputs)
        # Also as a file: Linux refuses one environment string over 128 KiB (large outputs).
        path = scratch / "steps" / f"{step_id}.outputs.json"
        path.parent.mkdir(exist_ok=True)
        path.write_text(text, encoding="utf-8")
        env[name + "_FILE"] = str(path)
        if len(text) <= MAX_ENV_OUTPUTS:
            env[name] = text
    return env


def prepare_scratch(root: Path, message: StepMessage, workspace: Path | None = None) -> Path:
    """The attempt's own folder: artifacts/ (downloads land here) and work/ (its cwd, see link_workspace)."""
    scratch = root / message.run_id / message.step / str(message.attempt)
    if scratch.exists():
        shutil.rmtree(scratch)
    (scratch / "artifacts").mkdir(parents=True)
    (scratch / "work").mkdir()
    if workspace is not None:
        link_workspace(workspace, scratch / "work", root)
    return scratch


def link_workspace(workspace: Path, work: Path, scratch_root: Path) -> None:
    """Link the workspace's top-level entries into `work`, so `./scripts/x.sh` resolves there too.

    Each attempt writes its products in its own folder; the workspace itself stays shared and clean.
    """
    if not workspace.is_dir():
        return
    scratch_real = scratch_root.resolve()
    for entry in workspace.iterdir():
        target = entry.resolve()
        # Never link the scratch space into itself (a scratch dir kept inside the workspace).
        if target == scratch_real or target in scratch_real.parents:
            continue
        (work / entry.name).symlink_to(target, target_is_directory=target.is_dir())


def tail_lines(end: bytes, cut: bool) -> list[str]:
    """The last lines in `end` (the last bytes of a stream; `cut`: its first line may be partial)."""
    lines = end.decode("utf-8", errors="backslashreplace").split("\n")
    if cut:
        lines = lines[1:]
    if lines and not lines[-1]:
        lines.pop()
    return [line.removesuffix("\r") for line in lines[-TAIL_LINES:]]


def _widen(pipe: IO[bytes]) -> None:
    with contextlib.suppress(OSError, AttributeError):  # not Linux, or over the system's cap
        fcntl.fcntl(pipe.fileno(), fcntl.F_SETPIPE_SZ, PIPE_BYTES)


def _pump(pipe: IO[bytes], stream: str, sink: LineSink | ChunkSink, tail: deque[str]) -> None:
    """Read the pipe in chunks until EOF: to a ChunkSink as they come, else split into lines here."""
    splitter = None if isinstance(sink, ChunkSink) else LineSplitter()
    fd = pipe.fileno()
    end = b""
    cut = False
    while chunk := os.read(fd, READ_CHUNK):
        if splitter is None:
            sink.feed(stream, chunk)  # type: ignore[union-attr]
        else:
            for text, _ in splitter.feed(chunk):
                sink(stream, text)  # type: ignore[operator]
        end += chunk
        if len(end) > TAIL_BYTES:
            end, cut = end[-TAIL_BYTES:], True
    if splitter is not None:
        for text, _ in splitter.finish():
            sink(stream, text)  # type: ignore[operator]
    tail.extend(tail_lines(end, cut))
    pipe.close()


class StepProcess(Protocol):
    """A started step process: a subprocess.Popen, or one in another container (flowdeck.runner.shim)."""

    pid: int
    returncode: int | None
    stdout: IO[bytes] | None
    stderr: IO[bytes] | None

    def wait(self) -> int: ...


Launcher = Callable[[list[str], dict[str, str], Path], StepProcess]
"""Starts the step's command with its environment in its folder (default: a local process group)."""


def launch_local(command: list[str], env: dict[str, str], cwd: Path) -> StepProcess:
    return subprocess.Popen(  # noqa: S603 - running the user's step is the point
        command,
        cwd=cwd,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,  # its own process group, so timeouts reach grandchildren too
    )


def _signal_group(process: StepProcess, sig: int) -> None:
    signal_group = getattr(process, "signal_group", None)
    if signal_group is not None:  # a process elsewhere signals its own group
        signal_group(sig)
        return
    with contextlib.suppress(ProcessLookupError):  # already gone
        os.killpg(process.pid, sig)


def _end_within(process: StepProcess, exited: threading.Event, grace: float, kill: threading.Event) -> None:
    """After SIGTERM: wait up to `grace` seconds for the exit, checking `kill` meanwhile; then SIGKILL."""
    until = time.monotonic() + grace
    while not exited.wait(min(0.1, max(until - time.monotonic(), 0.0))):
        if kill.is_set() or time.monotonic() >= until:
            _signal_group(process, signal.SIGKILL)
            exited.wait()
            return


def run_process(
    argv: list[str] | str,
    env: dict[str, str],
    cwd: Path,
    timeout: float,
    sink: LineSink | ChunkSink,
    stop: threading.Event,
    grace: float = KILL_GRACE_SECONDS,
    kill: threading.Event | None = None,
    launch: Launcher = launch_local,
) -> ProcessOutcome:
    """Run to completion, timeout, `stop` or `kill`; the whole process group is ended on the way out.

    `stop` sends SIGTERM, then SIGKILL after `grace` seconds (a timeout: KILL_GRACE_SECONDS), or as
    soon as `kill` is set; `kill` alone sends SIGKILL at once (a forced cancel).
    """
    kill = kill or threading.Event()
    started = time.monotonic()
    command = ["/bin/sh", "-c", argv] if isinstance(argv, str) else argv
    process = launch(command, env, cwd)
    outcome = ProcessOutcome(exit_code=None, timed_out=False, stopped=False, seconds=0.0)
    if process.stdout is None or process.stderr is None:  # pragma: no cover - PIPE was asked for
        raise RuntimeError("the step's output pipes are missing")
    _widen(process.stdout)
    _widen(process.stderr)
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
        if kill.is_set():
            outcome.stopped = True
            _signal_group(process, signal.SIGKILL)
            exited.wait()
            break
        if stop.is_set() or time.monotonic() >= deadline:
            outcome.stopped = stop.is_set()
            outcome.timed_out = not outcome.stopped
            _signal_group(process, signal.SIGTERM)
            # A cancel gives the step its own grace period; a timeout the short fixed one.
            _end_within(process, exited, grace if outcome.stopped else KILL_GRACE_SECONDS, kill)
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
