"""CPU the local stack uses while nothing happens: `flowdeck up`'s processes, idle, over a window.

Prints figures, not pass/fail:
  idle_cpu_percent = CPU seconds of the stack's processes (this one, the emulator, the workers)
                     per wall second, in percent of one core
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from flowdeck.local.stack import LocalStack, free_port

REPO = Path(__file__).resolve().parent.parent


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of one process so far (/proc/<pid>/stat)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--settle", type=float, default=10.0, help="seconds after start before measuring")
    parser.add_argument("--window", type=float, default=30.0, help="seconds measured")
    args = parser.parse_args()
    with (
        tempfile.TemporaryDirectory() as tmp,
        LocalStack(REPO / "workflows", port=free_port(), data_dir=Path(tmp), keep_state=False) as stack,
    ):
        names = {os.getpid(): "flowdeck up (API, stream readers, triggers)"}
        names |= {p.pid: " ".join(str(a) for a in p.args[2:3]) for p in stack.processes}
        time.sleep(args.settle)
        before, began = {pid: cpu_seconds(pid) for pid in names}, time.monotonic()
        time.sleep(args.window)
        used, wall = {pid: cpu_seconds(pid) - before[pid] for pid in names}, time.monotonic() - began
    for pid, name in names.items():
        print(f"{name}: {100 * used[pid] / wall:.1f} % of a core")
    print(f"idle_cpu_percent={100 * sum(used.values()) / wall:.1f}")


if __name__ == "__main__":
    main()
