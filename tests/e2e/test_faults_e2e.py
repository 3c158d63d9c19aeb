"""A fault injected on purpose end to end (the expensive one; the rest are integration tests and
bench/faults.py): a worker SIGKILLed while its step's log batches are being stored."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import time
from pathlib import Path

import httpx
import pytest

from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, step_pid, wait

pytestmark = pytest.mark.e2e


def test_worker_killed_during_a_log_flush_keeps_every_stored_line_once_in_order(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    run_id = start(api, "lost-flood", folder=str(tmp_path))
    pidfile = tmp_path / "worker.pid"
    worker_pid = step_pid(pidfile, 30)
    time.sleep(0.5)  # well into the flood: batches are stored every 100 ms

    os.kill(worker_pid, signal.SIGKILL)
    killed = time.monotonic()
    run = wait(api, run_id, timeout=30)
    detected = time.monotonic() - killed
    with contextlib.suppress(OSError):  # the step's process outlived its worker; its pipe is gone
        os.kill(int((tmp_path / "step.pid").read_text()), signal.SIGKILL)

    step = run["steps"][0]
    assert (run["status"], step["status"], step["error"]) == ("failed", "failed", "WorkerLost")
    assert detected <= 5 + 10  # the heartbeat timeout, and the emulator's check of it
    rows = api.get(f"/runs/{run_id}/logs", params={"format": "jsonl"}).text.splitlines()
    lines = [json.loads(row)["text"] for row in rows if row]
    assert len(lines) >= 2000
    assert lines == [f"line {n}" for n in range(len(lines))]
