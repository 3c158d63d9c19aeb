"""Run a step in another container of the task (its own image), as Argo's emissary executor does.

The step's container needs only `/bin/sh`: its entry point is SHIM_SCRIPT, which waits on the
shared volume for the runner's `start` script, runs it with stdout and stderr into FIFOs the runner
reads, relays the signals the runner writes into `signal` (TERM, KILL) to the step's process group,
and leaves the exit code in `exit`. No privilege is needed (a signal crosses containers as a file,
not as kill(2) between users), and the runner does everything else exactly as for a local process.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import shlex
import signal
import threading
import time
from pathlib import Path
from typing import IO

SHIM_DIR = "/flowdeck"
# Set on the runner container when the task has a step container (stacks/fresh.py).
ENV_SHIM_DIR = "FLOWDECK_SHIM_DIR"
CONTROL = "control"
# How long the step's container may take to pick the command up (its image is pulled before the
# task starts, so this covers only its shell starting).
PICK_UP_SECONDS = 60.0
POLL_SECONDS = 0.05

# The step container's entry point (`/bin/sh -c SHIM_SCRIPT`): POSIX sh and `sleep`, nothing else.
SHIM_SCRIPT = r"""c=${FLOWDECK_CONTROL:-/flowdeck/control}
while [ ! -f "$c/start" ]; do sleep 0.1 2>/dev/null || sleep 1; done
set -m 2>/dev/null
sh "$c/start" </dev/null >"$c/stdout" 2>"$c/stderr" &
pid=$!
echo "$pid" >"$c/pid.tmp" && mv "$c/pid.tmp" "$c/pid"
(while :; do
  if [ -f "$c/signal" ]; then
    s=$(cat "$c/signal"); rm -f "$c/signal"
    kill -s "$s" -- "-$pid" 2>/dev/null || kill -s "$s" "$pid" 2>/dev/null
  fi
  sleep 0.1 2>/dev/null || sleep 1
done) &
watcher=$!
wait "$pid"; code=$?
kill "$watcher" 2>/dev/null
echo "$code" >"$c/exit.tmp" && mv "$c/exit.tmp" "$c/exit"
"""


class ShimError(RuntimeError):
    """The step's container did not pick the command up."""


def _open_fifo(path: Path) -> IO[bytes]:
    """Open a FIFO for reading without waiting for its writer, then read it blocking."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    fcntl.fcntl(fd, fcntl.F_SETFL, flags & ~os.O_NONBLOCK)
    return os.fdopen(fd, "rb", buffering=0)


def start_script(command: list[str], env: dict[str, str], cwd: Path) -> str:
    """The `start` script: the step's folder, its environment, then the command itself (exec)."""
    exports = " ".join(f"{name}={shlex.quote(value)}" for name, value in sorted(env.items()))
    lines = [f"cd {shlex.quote(str(cwd))} || exit 127"]
    if exports:
        lines.append(f"export {exports}")
    lines.append("exec " + " ".join(shlex.quote(part) for part in command))
    return "\n".join(lines) + "\n"


class ShimProcess:
    """The step's process in the step container, seen through the shim's files (a Popen look-alike)."""

    def __init__(self, root: Path, command: list[str], env: dict[str, str], cwd: Path) -> None:
        self.control = root / CONTROL
        self.control.mkdir(parents=True, exist_ok=True)
        for name in ("stdout", "stderr"):
            os.mkfifo(self.control / name)
        # Opened before the shim opens them for writing, so its redirection never blocks.
        self.stdout: IO[bytes] | None = _open_fifo(self.control / "stdout")
        self.stderr: IO[bytes] | None = _open_fifo(self.control / "stderr")
        self.returncode: int | None = None
        self._signalled: int | None = None
        pending = self.control / "start.tmp"
        pending.write_text(start_script(command, env, cwd), encoding="utf-8")
        pending.rename(self.control / "start")
        self.pid = self._picked_up()

    def _picked_up(self) -> int:
        deadline = time.monotonic() + PICK_UP_SECONDS
        while not (self.control / "pid").exists():
            if time.monotonic() > deadline:
                raise ShimError(f"the step container did not start the command within {PICK_UP_SECONDS:.0f}s")
            time.sleep(POLL_SECONDS)
        return int((self.control / "pid").read_text().strip())

    def poll(self) -> int | None:
        if self.returncode is None and (self.control / "exit").exists():
            code = int((self.control / "exit").read_text().strip())
            # As subprocess reports a kill (-9; the shell says 137). After SIGTERM the shell's 143 is
            # kept: it cannot tell a process killed by it from one that exited 143 on its own.
            if self._signalled == signal.SIGKILL and code == 128 + signal.SIGKILL:
                code = -signal.SIGKILL
            self.returncode = code
        return self.returncode

    def wait(self) -> int:
        while self.poll() is None:
            time.sleep(POLL_SECONDS)
        return int(self.returncode or 0)

    def signal_group(self, sig: int) -> None:
        """Ask the shim to signal the step's process group."""
        if self.poll() is not None:
            return
        self._signalled = sig
        pending = self.control / "signal.tmp"
        pending.write_text(signal.Signals(sig).name.removeprefix("SIG"), encoding="ascii")
        pending.rename(self.control / "signal")


class ShimLauncher:
    """Starts each step through the shim in `root` (one step per task, so one control folder)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.lock = threading.Lock()

    def __call__(self, command: list[str], env: dict[str, str], cwd: Path) -> ShimProcess:
        with self.lock:
            own = {k: v for k, v in env.items() if os.environ.get(k) != v}
            with contextlib.suppress(FileNotFoundError):
                (self.root / CONTROL / "exit").unlink()
            return ShimProcess(self.root, command, own, cwd)
