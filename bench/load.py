"""Load on the local stack: many runs started at once, their output stored and watched live; prints figures.

RUNS runs (default 100) are started at once from CLIENTS threads through the REST API, of two 5-step
workflows whose steps each print LINES numbered lines (default 2,000): `load-open` (no limit) and, one
run in LIMITED_EVERY, `load-limited` (`concurrency: {max_runs: MAX_RUNS, on_limit: queue}`). VIEWERS
WebSocket viewers (default 10) watch them, each on several runs (one connection per run, as one
dashboard tab per run; neighbouring viewers share a run, so some runs have two viewers).

Checks, printed as name=value lines (figures, not pass/fail):
  load_runs_started=            runs whose start answered 202
  load_runs_recorded=           runs recorded succeeded with every step succeeded
  load_lines_lost=              lines of succeeded steps missing from the store, read back by seq  goal 0
                                (and, as details, lines stored twice or out of print order, seq gaps)
  load_viewer_lines_lost=       stored lines of its runs a viewer never got (deduplicated by seq) goal 0
  load_limit_exceeded=          moments with more than MAX_RUNS limited runs running: sampled from
                                the API while the load runs, and every run start in the records  goal 0
  load_runs_per_min=            runs finished per minute (first start to last end)
  load_run_p95_s=               95th percentile of the runs' recorded durations (started -> ended)
plus details: duplicates and seq gaps seen by viewers and in the store, how long starts took to answer,
start-to-end p95 including time queued, failed steps by error. Develop with `--runs 10 --lines 200`.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import statistics
import tempfile
import threading
import time
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import connect

from flowdeck import constants
from flowdeck.local.stack import LocalStack, free_port
from flowdeck.stores.logs import LogStore

RUNS = 100
LINES = 2_000
STEPS = 5
CLIENTS = 10
VIEWERS = 10
LIMITED_EVERY = 5
MAX_RUNS = 3
STEP_SECONDS = 1.0
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
SAMPLE_EVERY = 0.25

# Prints `count` lines `<run> <step> <n> ...` in 20 bursts over `seconds`, as a build or test step does.
PRINTER = """import os, sys, time
count, seconds = int(sys.argv[1]), float(sys.argv[2])
run, step = os.environ["FLOWDECK_RUN_ID"], os.environ["FLOWDECK_STEP_ID"]
bursts = 20
for i in range(count):
    print(f"{run} {step} {i:06d} the quick brown fox jumps over the lazy dog")
    if (i + 1) % max(1, count // bursts) == 0:
        sys.stdout.flush()
        time.sleep(seconds / bursts)
"""


def workflow(name: str, lines: int, seconds: float, limited: bool) -> str:
    steps = "".join(
        f"  - id: s{index}\n    run: python3 printer.py {lines} {seconds}\n" for index in range(1, STEPS + 1)
    )
    limit = f"runtime_config:\n  concurrency: {{max_runs: {MAX_RUNS}, on_limit: queue}}\n" if limited else ""
    return f"name: {name}\n{limit}steps:\n{steps}"


def parse_time(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(fraction * len(ordered)) - 1))]


# -- starting -------------------------------------------------------------------------------------
def start_all(api_url: str, names: list[str], clients: int) -> list[tuple[str, str, float, float]]:
    """One run of each name, started at once from `clients` threads: (id, workflow, asked, answered)."""
    barrier = threading.Barrier(clients)
    shares = [names[index::clients] for index in range(clients)]

    def client(share: list[str]) -> list[tuple[str, str, float, float]]:
        started = []
        with httpx.Client(base_url=api_url, timeout=120) as api:
            barrier.wait()
            for name in share:
                asked = time.time()
                answer = api.post(f"/workflows/{name}/runs", json={})
                if answer.status_code != 202:
                    print(f"start of {name} answered {answer.status_code}: {answer.text[:200]}")
                    continue
                started.append((answer.json()["run_id"], name, asked, time.time()))
        return started

    with ThreadPoolExecutor(clients) as pool:
        return [run for share in pool.map(client, shares) for run in share]


# -- watching -------------------------------------------------------------------------------------
@dataclass
class Watch:
    """What one connection (one viewer on one run) received."""

    run_id: str
    parts: dict[tuple[int, int], list[str]] = field(default_factory=dict)  # (seq, part) -> texts
    duplicates: int = 0
    ended: bool = False
    error: str | None = None

    def lines(self) -> set[str]:
        return {text for texts in self.parts.values() for text in texts}

    def seq_gaps(self) -> int:
        seqs = sorted({seq for seq, _ in self.parts})
        return (seqs[-1] - len(seqs)) if seqs else 0


async def watch(port: int, viewer: int, watch_: Watch, expected: int, timeout: float) -> None:
    """One connection subscribed to one run from seq 0, until it has every line or its run is long over."""
    url = f"ws://127.0.0.1:{port}/ws?user=viewer-{viewer}@example.com"
    deadline = time.monotonic() + timeout
    try:
        async with connect(url, max_size=2**20, open_timeout=60) as ws:
            await ws.send(json.dumps({"action": "subscribe", "run_id": watch_.run_id, "since_seq": 0}))
            received = 0
            while time.monotonic() < deadline:
                # Every line in: a short wait more, only to catch a duplicate. Run over and 20 s of
                # silence: what is missing is not coming.
                complete = received >= expected
                try:
                    raw = await asyncio.wait_for(
                        ws.recv(), 2.0 if complete else 20.0 if watch_.ended else 60.0
                    )
                except TimeoutError:
                    if complete or watch_.ended:
                        return
                    continue
                message = json.loads(raw)
                if message["type"] == "log":
                    key = (int(message["seq"]), int(message.get("part", 1)))
                    if key in watch_.parts:
                        watch_.duplicates += 1
                        continue
                    texts = [line["text"] for line in message["lines"]]
                    watch_.parts[key] = texts
                    received += len(texts)
                elif message["type"] == "run" and message.get("status") in FINISHED:
                    watch_.ended = True
                elif message["type"] == "error":
                    watch_.error = f"{message.get('error')}: {message.get('message')}"
    except Exception as exc:
        watch_.error = repr(exc)


class Viewers(threading.Thread):
    """VIEWERS viewers, each on several runs, all on one event loop in a background thread."""

    def __init__(self, port: int, plan: list[list[str]], expected: int, timeout: float) -> None:
        super().__init__(daemon=True)
        self.port, self.plan, self.expected, self.timeout = port, plan, expected, timeout
        self.watches: list[list[Watch]] = [[Watch(run_id) for run_id in runs] for runs in plan]

    def run(self) -> None:
        asyncio.run(self._all())

    async def _all(self) -> None:
        await asyncio.gather(
            *(
                watch(self.port, viewer, one, self.expected, self.timeout)
                for viewer, watches in enumerate(self.watches)
                for one in watches
            )
        )


def viewer_plan(run_ids: list[str], viewers: int) -> list[list[str]]:
    """Viewer v watches its own share of the runs and the first run of the next share (two viewers)."""
    shares = [run_ids[index::viewers] for index in range(viewers)]
    return [
        [*share, shares[(index + 1) % viewers][0]] if viewers > 1 and shares[(index + 1) % viewers] else share
        for index, share in enumerate(shares)
        if share
    ]


# -- the limit ------------------------------------------------------------------------------------
class Sampler(threading.Thread):
    """Counts the limited workflow's running runs through the API until stopped."""

    def __init__(self, api_url: str, workflow_name: str) -> None:
        super().__init__(daemon=True)
        self.api_url, self.workflow = api_url, workflow_name
        self.counts: list[int] = []
        self.failed = 0
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.api_url, timeout=60) as api:
            while not self.stop.wait(SAMPLE_EVERY):
                try:
                    answer = api.get(
                        "/runs", params={"workflow": self.workflow, "status": "running", "limit": 50}
                    )
                except httpx.HTTPError:
                    self.failed += 1  # an answer slower than the client's timeout: no sample
                    continue
                if answer.status_code == 200:
                    self.counts.append(len(answer.json()["runs"]))


def overlap_excess(intervals: list[tuple[float, float]], limit: int) -> int:
    """Run starts (by the records) at which more than `limit` runs were running."""
    return sum(
        1
        for begin, _ in intervals
        if sum(1 for other_begin, other_end in intervals if other_begin <= begin < other_end) > limit
    )


# -- reading back ---------------------------------------------------------------------------------
def finished(api: httpx.Client, workflows: set[str]) -> set[str]:
    """Ids of the runs of these workflows that ended, from the history list (one page per 100 runs)."""
    ended: set[str] = set()
    for name in workflows:
        cursor = None
        while True:
            params: dict[str, Any] = {"workflow": name, "limit": 100} | ({"cursor": cursor} if cursor else {})
            page = api.get("/runs", params=params).json()
            ended |= {run["run_id"] for run in page["runs"] if run["status"] in FINISHED}
            if not (cursor := page.get("next_cursor")):
                break
    return ended


def wait_all(
    api: httpx.Client, started: list[tuple[str, str, float, float]], timeout: float
) -> dict[str, dict[str, Any]]:
    """Every run once it ended (or as it is at the timeout), read whole."""
    deadline = time.monotonic() + timeout
    run_ids = {run_id for run_id, *_ in started}
    workflows = {name for _, name, *_ in started}
    # The history list, not one read per run: the bench's own reads would load the API it measures.
    while time.monotonic() < deadline:
        try:
            if run_ids <= finished(api, workflows):
                break
        except httpx.HTTPError:
            pass
        time.sleep(2.0)
    return {run_id: api.get(f"/runs/{run_id}").json() for run_id in sorted(run_ids)}


def expected_lines(run_id: str, lines: int, steps: set[str] | None = None) -> list[str]:
    """What the run's steps printed, in order (of `steps` only, when given)."""
    return [
        f"{run_id} s{step} {i:06d} the quick brown fox jumps over the lazy dog"
        for step in range(1, STEPS + 1)
        if steps is None or f"s{step}" in steps
        for i in range(lines)
    ]


@dataclass
class Stored:
    texts: set[str] = field(default_factory=set)
    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    seq_gaps: int = 0


def check_stored(store: LogStore, run: dict[str, Any], lines: int) -> Stored:
    """The run's stored log read back by seq against what its steps printed.

    A step that succeeded printed all its lines; one that never ran printed none (the run's figure
    says so); one recorded lost may have printed some: what it stored is checked, not counted lost.
    """
    run_id = str(run["run_id"])
    succeeded = {step["id"] for step in run.get("steps", []) if step.get("status") == "succeeded"}
    result = Stored()
    batches = list(store.iter_batches(run_id, 0, None))
    seqs = [int(batch["seq"]) for batch in batches]
    result.seq_gaps = (max(seqs) - len(set(seqs))) if seqs else 0
    texts = [line["text"] for batch in batches for line in batch["lines"]]
    result.texts = set(texts)
    result.lost = len(set(expected_lines(run_id, lines, succeeded)) - result.texts)
    expected = expected_lines(run_id, lines)
    result.duplicated = len(texts) - len(set(texts))
    # Steps run one after another, so the whole run's lines are in print order too.
    order = {text: position for position, text in enumerate(expected)}
    positions = [order.get(text, -1) for text in texts]
    result.out_of_order = sum(1 for a, b in itertools.pairwise(positions) if b < a)
    return result


# -- main -----------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=RUNS)
    parser.add_argument("--lines", type=int, default=LINES, help="lines each step prints")
    parser.add_argument("--viewers", type=int, default=VIEWERS)
    parser.add_argument("--clients", type=int, default=CLIENTS, help="threads starting the runs")
    parser.add_argument("--step-seconds", type=float, default=STEP_SECONDS, help="how long a step prints")
    parser.add_argument("--workers", type=int, default=2, help="worker processes of the local stack")
    parser.add_argument("--worker-concurrency", type=int, default=4, help="steps one worker runs at once")
    parser.add_argument("--timeout", type=float, default=1800, help="seconds to wait for every run")
    parser.add_argument(
        "--keep", type=Path, help="keep the stack's folder (logs) here instead of a temporary one"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        folder = root / "workflows"
        folder.mkdir(parents=True)
        (folder / "printer.py").write_text(PRINTER)
        (folder / "load-open.yaml").write_text(workflow("load-open", args.lines, args.step_seconds, False))
        (folder / "load-limited.yaml").write_text(
            workflow("load-limited", args.lines, args.step_seconds, True)
        )
        names = [
            "load-limited" if i % LIMITED_EVERY == LIMITED_EVERY - 1 else "load-open"
            for i in range(args.runs)
        ]
        with (
            LocalStack(
                folder,
                port=free_port(),
                workers=args.workers,
                worker_concurrency=args.worker_concurrency,
                data_dir=root / "data",
                keep_state=False,
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=120) as api,
        ):
            sampler = Sampler(stack.api_url, "load-limited")
            sampler.start()
            began = time.time()
            started = start_all(stack.api_url, names, min(args.clients, args.runs))
            starts_answered = time.time()
            run_ids = [run_id for run_id, *_ in started]
            viewers = Viewers(
                stack.port, viewer_plan(run_ids, args.viewers), STEPS * args.lines, args.timeout
            )
            viewers.start()
            runs = wait_all(api, started, args.timeout)
            sampler.stop.set()
            viewers.join(args.timeout)
            store = LogStore(constants.LOGS_TABLE, client=stack.client("dynamodb"))
            stored = {
                run_id: check_stored(store, runs[run_id] | {"run_id": run_id}, args.lines)
                for run_id in run_ids
            }

    recorded = sum(
        1
        for run in runs.values()
        if run.get("status") == "succeeded"
        and len(run.get("steps", [])) == STEPS
        and all(step.get("status") == "succeeded" for step in run["steps"])
    )
    ends = [parse_time(run["ended_at"]) for run in runs.values() if run.get("ended_at")]
    durations = [
        parse_time(run["ended_at"]) - parse_time(run["started_at"])
        for run in runs.values()
        if run.get("ended_at") and run.get("started_at")
    ]
    asked = {run_id: at for run_id, _, at, _ in started}
    start_answers = [answered - at for _, _, at, answered in started]
    start_to_end = [
        parse_time(run["ended_at"]) - asked[run_id] for run_id, run in runs.items() if run.get("ended_at")
    ]
    limited = [
        (parse_time(run["started_at"]), parse_time(run["ended_at"]))
        for run in runs.values()
        if run.get("workflow") == "load-limited" and run.get("started_at") and run.get("ended_at")
    ]
    sampled_excess = sum(1 for count in sampler.counts if count > MAX_RUNS)
    watches = [one for group in viewers.watches for one in group]
    # Of the lines stored (a step that never ran printed nothing to watch).
    viewer_lost = sum(len(stored[w.run_id].texts - w.lines()) for w in watches)
    elapsed = (max(ends) - began) if ends else float("nan")

    print(f"load_runs_started={len(started)}")
    print(f"load_runs_recorded={recorded}")
    print(f"load_lines_lost={sum(s.lost for s in stored.values())}")
    print(f"load_viewer_lines_lost={viewer_lost}")
    print(f"load_limit_exceeded={sampled_excess + overlap_excess(limited, MAX_RUNS)}")
    print(f"load_runs_per_min={len(ends) / elapsed * 60:.1f}")
    print(f"load_run_p95_s={percentile(durations, 0.95):.1f}" if durations else "load_run_p95_s=nan")
    print("# details")
    print(f"load_lines_printed={len(run_ids) * STEPS * args.lines} (when every step runs)")
    print(f"load_lines_stored={sum(len(s.texts) for s in stored.values())}")
    print(f"load_lines_duplicated={sum(s.duplicated for s in stored.values())}")
    print(f"load_lines_out_of_order={sum(s.out_of_order for s in stored.values())}")
    print(f"load_store_seq_gaps={sum(s.seq_gaps for s in stored.values())}")
    print(f"load_viewer_connections={len(watches)}")
    print(f"load_viewer_duplicates={sum(w.duplicates for w in watches)}")
    print(f"load_viewer_seq_gaps={sum(w.seq_gaps() for w in watches)}")
    print(f"load_starts_seconds={starts_answered - began:.1f}")
    if start_answers:
        print(f"load_start_answer_p50_s={statistics.median(start_answers):.2f}")
        print(f"load_start_answer_p95_s={percentile(start_answers, 0.95):.2f}")
    print(f"load_run_p50_s={statistics.median(durations):.1f}" if durations else "load_run_p50_s=nan")
    print(f"load_start_to_end_p95_s={percentile(start_to_end, 0.95):.1f}" if start_to_end else "")
    print(f"load_limit_samples={len(sampler.counts)} load_limit_samples_failed={sampler.failed}")
    print(f"load_limit_max_sampled={max(sampler.counts, default=0)}")
    print(f"load_seconds={elapsed:.1f}")
    statuses: dict[str, int] = defaultdict(int)
    for run in runs.values():
        statuses[str(run.get("status"))] += 1
    print("load_statuses=" + ",".join(f"{k}:{v}" for k, v in sorted(statuses.items())))
    failures: dict[str, int] = defaultdict(int)
    for run in runs.values():
        for step in run.get("steps", []):
            if step.get("status") not in ("succeeded", None):
                failures[f"{step.get('status')}:{step.get('error') or '-'}"] += 1
    if failures:
        print("load_step_failures=" + ",".join(f"{k}:{v}" for k, v in sorted(failures.items())))
    errors = [w.error for w in watches if w.error]
    if errors:
        print(f"load_viewer_errors={len(errors)} first={errors[0]}")


if __name__ == "__main__":
    main()
