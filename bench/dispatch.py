"""Dispatch overhead of the local stack: 20 sequential no-op steps, measured end to end.

Prints figures, not pass/fail:
  dispatch_overhead_ms_per_step = median over runs of (run wall time - sum of step process times) / steps
  state_transitions_per_step    = states entered in the execution history / steps

Each figure is the median of --repeat runs (after one warm-up): with the default, two runs of the
bench agree within 10 % on a quiet machine; on a busy one raise --repeat.
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
REPEAT = 15
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


def pool_dispatch(repeat: int, steps: int) -> tuple[list[float], list[float]]:
    """Pool mode: per run, the overhead per step (ms) and the states entered per step."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflow(folder, steps)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=30) as api,
        ):
            run_once(api)  # warm-up: imports, first connections
            overheads, transitions = [], []
            for _ in range(repeat):
                run = run_once(api)
                assert run["status"] == "succeeded", run
                wall = seconds_between(run["started_at"], run["ended_at"]) or 0.0
                process = sum(step["process_seconds"] or 0.0 for step in run["steps"])
                overheads.append((wall - process) / steps * 1000)
                history = stack.client("stepfunctions").get_execution_history(
                    executionArn=run["execution_arn"], maxResults=1000
                )["events"]
                entered = sum(1 for event in history if event["type"].endswith("StateEntered"))
                transitions.append(entered / steps)
                print(
                    f"run {run['run_id']}: wall {wall:.3f}s, step processes {process:.3f}s, "
                    f"{entered} states entered"
                )
    return overheads, transitions


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", "--runs", type=int, default=REPEAT, help="measured runs whose median is printed"
    )
    parser.add_argument("--steps", type=int, default=STEPS)
    args = parser.parse_args()
    overheads, transitions = pool_dispatch(args.repeat, args.steps)
    print(f"steps per run: {args.steps}, measured runs: {args.repeat}")
    print(
        f"dispatch overhead per step: median {statistics.median(overheads):.1f} ms, "
        f"min {min(overheads):.1f} ms, max {max(overheads):.1f} ms (goal <= 50 ms)"
    )
    print(f"dispatch_overhead_ms_per_step={statistics.median(overheads):.1f}")
    print(f"state_transitions_per_step={statistics.median(transitions):.2f}")


if __name__ == "__main__":
    main()
