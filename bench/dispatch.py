"""Dispatch overhead of the local stack: 20 sequential no-op steps, measured end to end.

Prints figures, not pass/fail:
  dispatch_overhead_ms_per_step = (run wall time - sum of step process times) / steps
  state_transitions_per_step    = states entered in the execution history / steps
With --fresh, the same for fresh mode (each step a new task: locally a new runner process):
  fresh_dispatch_overhead_ms_per_step (goal <= 250 locally)
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from flowdeck.clock import seconds_between
from flowdeck.local.stack import LocalStack, free_port

STEPS = 20
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}


def write_workflow(folder: Path, steps: int) -> None:
    lines = ["name: dispatch-bench", "description: sequential no-op steps", "steps:"]
    lines += [f'  - {{id: s{i:02d}, command: ["true"]}}' for i in range(1, steps + 1)]
    (folder / "dispatch-bench.yaml").write_text("\n".join(lines) + "\n")


def run_once(api: httpx.Client) -> dict:
    run_id = api.post("/workflows/dispatch-bench/runs", json={}).json()["run_id"]
    while True:
        run = api.get(f"/runs/{run_id}").json()
        if run.get("status") in FINISHED:
            return run
        # Reading the run costs the emulator CPU; the figures come from the run's own record.
        time.sleep(0.25)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="measured runs (after one warm-up)")
    parser.add_argument("--steps", type=int, default=STEPS)
    parser.add_argument("--fresh", action="store_true", help="fresh mode: one new task per step")
    args = parser.parse_args()
    if args.fresh:
        measure_fresh(args.runs, args.steps)
        return
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflow(folder, args.steps)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=30) as api,
        ):
            run_once(api)  # warm-up: imports, first connections
            overheads, transitions = [], []
            for _ in range(args.runs):
                run = run_once(api)
                assert run["status"] == "succeeded", run
                wall = seconds_between(run["started_at"], run["ended_at"]) or 0.0
                process = sum(step["process_seconds"] or 0.0 for step in run["steps"])
                overheads.append((wall - process) / args.steps * 1000)
                history = stack.client("stepfunctions").get_execution_history(
                    executionArn=run["execution_arn"], maxResults=1000
                )["events"]
                entered = sum(1 for event in history if event["type"].endswith("StateEntered"))
                transitions.append(entered / args.steps)
                print(
                    f"run {run['run_id']}: wall {wall:.3f}s, step processes {process:.3f}s, "
                    f"{entered} states entered"
                )
    print(f"steps per run: {args.steps}, measured runs: {args.runs}")
    print(
        f"dispatch overhead per step: median {statistics.median(overheads):.1f} ms, "
        f"min {min(overheads):.1f} ms, max {max(overheads):.1f} ms (goal <= 50 ms)"
    )
    print(f"dispatch_overhead_ms_per_step={statistics.median(overheads):.1f}")
    print(f"state_transitions_per_step={statistics.median(transitions):.2f}")


def measure_fresh(runs: int, steps: int) -> None:
    """fresh_dispatch_overhead_ms_per_step: the same sequential no-op steps, each in a new task."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflow(folder, steps)
        text = (folder / "dispatch-bench.yaml").read_text()
        (folder / "dispatch-bench.yaml").write_text(
            text.replace("steps:\n", "runtime_config: {mode: fresh}\nsteps:\n", 1)
        )
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=30) as api,
        ):
            run_once(api)  # warm-up: the emulator's first RunTask, file caches
            overheads = []
            for _ in range(runs):
                run = run_once(api)
                assert run["status"] == "succeeded", run
                wall = seconds_between(run["started_at"], run["ended_at"]) or 0.0
                process = sum(step["process_seconds"] or 0.0 for step in run["steps"])
                overheads.append((wall - process) / steps * 1000)
                print(f"run {run['run_id']}: wall {wall:.3f}s, step processes {process:.3f}s")
    print(f"fresh steps per run: {steps}, measured runs: {runs}")
    print(
        f"fresh dispatch overhead per step: median {statistics.median(overheads):.1f} ms, "
        f"min {min(overheads):.1f} ms, max {max(overheads):.1f} ms (goal <= 250 ms locally)"
    )
    print(f"fresh_dispatch_overhead_ms_per_step={statistics.median(overheads):.1f}")


if __name__ == "__main__":
    main()
