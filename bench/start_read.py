"""Readable at once: 200 starts on the local stack, each read back the moment its start answered.

Prints figures, not pass/fail (name=value lines):
  start_read_404          = reads that answered 404 RunNotFound (SPEC §2 says 0)
  start_read_incomplete   = 200 reads without a status, trigger, started_by, inputs, or a step listed for
                            every step of the plan (a fast machine may already show it running)
  start_read_other_errors = starts or reads that answered anything else
  start_ms_p50/p95, read_ms_p50/p95 = latency of the start call and of the read right after it
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

import httpx

from flowdeck.local.stack import LocalStack, free_port

WORKFLOW = "start-read-bench"


def write_workflow(folder: Path) -> None:
    (folder / f"{WORKFLOW}.yaml").write_text(
        f"name: {WORKFLOW}\ndescription: one no-op step\nsteps:\n  - {{id: only, command: ['true']}}\n"
    )


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))] if ordered else 0.0


class Tally:
    """What every thread saw, under one lock."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.not_found = self.incomplete = self.errors = 0
        self.start_ms: list[float] = []
        self.read_ms: list[float] = []

    def start_and_read(self, api: httpx.Client) -> None:
        began = time.perf_counter()
        started = api.post(f"/workflows/{WORKFLOW}/runs", json={"inputs": {}})
        answered = time.perf_counter()
        if started.status_code != 202:
            with self.lock:
                self.errors += 1
            return
        read = api.get(f"/runs/{started.json()['run_id']}")
        done = time.perf_counter()
        run = read.json() if read.status_code == 200 else {}
        complete = (
            run.get("status") in ("queued", "running", "succeeded")
            and run.get("trigger") == "manual"
            and run.get("started_by")
            and run.get("inputs") == {}
            and [step["id"] for step in run.get("steps", [])] == ["only"]
        )
        with self.lock:
            self.start_ms.append((answered - began) * 1000)
            self.read_ms.append((done - answered) * 1000)
            if read.status_code == 404:
                self.not_found += 1
            elif read.status_code != 200:
                self.errors += 1
            elif not complete:
                self.incomplete += 1


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--starts", type=int, default=200)
    parser.add_argument("--threads", type=int, default=4, help="clients starting at the same time")
    args = parser.parse_args()
    tally = Tally()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflow(folder)
        with LocalStack(
            folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
        ) as stack:
            per_thread = [
                args.starts // args.threads + (i < args.starts % args.threads) for i in range(args.threads)
            ]

            def client(count: int) -> None:
                headers = {"X-Flowdeck-User": "bench@example.com"}
                with httpx.Client(base_url=stack.api_url, timeout=60, headers=headers) as api:
                    for _ in range(count):
                        tally.start_and_read(api)

            threads = [threading.Thread(target=client, args=(n,)) for n in per_thread]
            began = time.perf_counter()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            elapsed = time.perf_counter() - began
    print(f"starts: {args.starts} from {args.threads} threads in {elapsed:.1f}s")
    print(f"start_read_404={tally.not_found}")
    print(f"start_read_incomplete={tally.incomplete}")
    print(f"start_read_other_errors={tally.errors}")
    print(f"start_ms_p50={statistics.median(tally.start_ms):.1f}")
    print(f"start_ms_p95={percentile(tally.start_ms, 0.95):.1f}")
    print(f"read_ms_p50={statistics.median(tally.read_ms):.1f}")
    print(f"read_ms_p95={percentile(tally.read_ms, 0.95):.1f}")


if __name__ == "__main__":
    main()
