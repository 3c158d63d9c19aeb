"""Dispatch overhead of the local stack: sequential no-op steps, measured end to end, in both modes.

Prints figures, not pass/fail:
  dispatch_overhead_ms_per_step       = median over runs of (run wall time - Σ step process times) / steps
                                        for pool steps (warm workers; goal <= 50)
  state_transitions_per_step          = states entered in the execution history / steps
  fresh_dispatch_overhead_ms_per_step = the same for fresh steps (each a new task: locally a new runner
                                        process; goal <= 250 locally)

Each figure is the median of --repeat runs spread over --stacks local stacks (each after one warm-up
run): with the defaults, two runs of the bench agree within 10 % on a quiet machine; on a busy one
raise both.
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
FRESH_STEPS = 10
REPEAT = 30
STACKS = 5
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}


def write_workflow(folder: Path, steps: int, mode: str) -> None:
    lines = [
        "name: dispatch-bench",
        "description: sequential no-op steps",
        f"runtime_config: {{mode: {mode}}}",
    ]
    lines += ["steps:"] + [f'  - {{id: s{i:02d}, command: ["true"]}}' for i in range(1, steps + 1)]
    (folder / "dispatch-bench.yaml").write_text("\n".join(lines) + "\n")


def run_once(api: httpx.Client) -> dict:
    run_id = api.post("/workflows/dispatch-bench/runs", json={}).json()["run_id"]
    while True:
        run = api.get(f"/runs/{run_id}").json()
        if run.get("status") in FINISHED:
            return run
        # Each read of a 20-step run costs the emulator CPU the steps need, and the figures come from
        # the run's own record (its start and end), not from when this loop saw it end.
        time.sleep(1.0)


def dispatch(mode: str, repeat: int, steps: int, stacks: int) -> tuple[list[float], list[float]]:
    """Per measured run: the overhead per step (ms) and the states entered per step.

    The runs are spread over `stacks` local stacks started one after the other: a stack's processes
    keep what slows or speeds them for their whole life (hash seeds, memory layout, which core each
    lands on), so one stack's runs share a bias that only more stacks average out (as pyperf does
    with its worker processes).
    """
    overheads: list[float] = []
    transitions: list[float] = []
    for index in range(stacks):
        share = repeat // stacks + (1 if index < repeat % stacks else 0)
        more_overheads, more_transitions = dispatch_on_one_stack(mode, share, steps)
        overheads += more_overheads
        transitions += more_transitions
    return overheads, transitions


def dispatch_on_one_stack(mode: str, repeat: int, steps: int) -> tuple[list[float], list[float]]:
    """Per measured run on a new local stack (after one warm-up run): overhead per step, states per step."""
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflow(folder, steps, mode)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=30) as api,
        ):
            run_once(api)  # warm-up: imports, first connections, the emulator's first RunTask
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
                    f"{mode} run {run['run_id']}: wall {wall:.3f}s, step processes {process:.3f}s, "
                    f"{entered} states entered"
                )
    return overheads, transitions


def report(name: str, overheads: list[float], goal: int) -> None:
    print(
        f"{name}: median {statistics.median(overheads):.1f} ms, min {min(overheads):.1f} ms, "
        f"max {max(overheads):.1f} ms over {len(overheads)} runs (goal <= {goal} ms)"
    )
    print(f"{name}={statistics.median(overheads):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--repeat", "--runs", type=int, default=REPEAT, help="measured runs whose median is printed"
    )
    parser.add_argument("--steps", type=int, default=STEPS, help="pool steps per run")
    parser.add_argument("--fresh-steps", type=int, default=FRESH_STEPS, help="fresh steps per run")
    parser.add_argument("--mode", choices=["pool", "fresh", "both"], default="both")
    parser.add_argument("--stacks", type=int, default=STACKS, help="local stacks the runs are spread over")
    args = parser.parse_args()
    if args.mode in ("pool", "both"):
        overheads, transitions = dispatch("pool", args.repeat, args.steps, args.stacks)
        report("dispatch_overhead_ms_per_step", overheads, 50)
        print(f"state_transitions_per_step={statistics.median(transitions):.2f}")
    if args.mode in ("fresh", "both"):
        overheads, _ = dispatch("fresh", args.repeat, args.fresh_steps, args.stacks)
        report("fresh_dispatch_overhead_ms_per_step", overheads, 250)


if __name__ == "__main__":
    main()
