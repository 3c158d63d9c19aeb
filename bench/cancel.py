"""Graceful cancel on the local stack: how soon the step's process gets SIGTERM, and whether the run
ever reads `cancelled` while that process still runs.

Each of N runs starts a step that traps SIGTERM (it writes the time, lingers LINGER seconds, writes
the time again, exits). Once it runs, the bench cancels it (graceful) and reads the run as fast as
the API answers until it says `cancelled`. Prints figures, not pass/fail:
  cancel_sigterm_ms_p50/p95  = the step's SIGTERM trap ran - the cancel answered (ms)
  cancel_status_before_exit  = reads that said `cancelled` before the process had exited (goal 0)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from flowdeck.local.stack import LocalStack, free_port

RUNS = 20
LINGER_SECONDS = 0.5
READ_EVERY_SECONDS = 0.02

WORKFLOW = """\
name: cancel-bench
inputs:
  folder: {type: string, required: true}
  linger: {type: number, default: 0.5}
steps:
  - id: trap
    grace_period: 20s
    command:
      - python3
      - -c
      - |
        import json, os, pathlib, signal, sys, time
        inputs = json.loads(os.environ["FLOWDECK_INPUTS"])
        folder = pathlib.Path(inputs["folder"])

        def stopped(signum, frame):
            (folder / "sigterm").write_text(repr(time.time()))
            time.sleep(inputs["linger"])
            (folder / "exited").write_text(repr(time.time()))
            sys.exit(143)

        signal.signal(signal.SIGTERM, stopped)
        (folder / "ready").write_text("ready")
        time.sleep(300)
"""


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} never appeared")
        time.sleep(0.01)


def cancel_once(api: httpx.Client, folder: Path, linger: float) -> tuple[float, int, int]:
    """(ms from the cancel's answer to the SIGTERM trap, reads saying cancelled too early, reads)."""
    folder.mkdir()
    run_id = api.post(
        "/workflows/cancel-bench/runs", json={"inputs": {"folder": str(folder), "linger": linger}}
    )
    run_id.raise_for_status()
    rid = run_id.json()["run_id"]
    wait_for(folder / "ready")
    answer = api.post(f"/runs/{rid}/cancel", json={"mode": "graceful"})
    answered = time.time()
    answer.raise_for_status()
    early = reads = 0
    while True:
        status = api.get(f"/runs/{rid}").json()["status"]
        reads += 1
        if status == "cancelled":
            # Read back at once: had the process not written its exit marker, it still ran.
            early += 0 if (folder / "exited").exists() else 1
            break
        time.sleep(READ_EVERY_SECONDS)
    wait_for(folder / "sigterm")
    sigterm = float((folder / "sigterm").read_text())
    return (sigterm - answered) * 1000, early, reads


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=RUNS, help="measured cancels (after one warm-up)")
    parser.add_argument("--linger", type=float, default=LINGER_SECONDS, help="seconds the trap takes to exit")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "workflows").mkdir()
        (root / "workflows" / "cancel-bench.yaml").write_text(WORKFLOW)
        with (
            LocalStack(
                root / "workflows", port=free_port(), workers=2, data_dir=root / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=30) as api,
        ):
            cancel_once(api, root / "warm-up", args.linger)
            delays, early = [], 0
            for index in range(args.runs):
                delay, too_early, reads = cancel_once(api, root / f"run-{index}", args.linger)
                delays.append(delay)
                early += too_early
                print(f"cancel {index + 1}: SIGTERM {delay:.0f} ms after the answer, {reads} reads")
    print(f"graceful cancels: {args.runs}, trap lingers {args.linger}s before exiting")
    print(f"cancel_sigterm_ms_p50={statistics.median(delays):.0f}")
    print(f"cancel_sigterm_ms_p95={percentile(delays, 0.95):.0f}")
    print(f"cancel_status_before_exit={early}")


if __name__ == "__main__":
    main()
