"""Live logs on the local stack, measured in one run of the stack; prints figures (name=value lines).

1. latency: a step prints a timestamped line 20 times a second for 10 s; a WebSocket subscriber
   takes arrival time - the line's own timestamp (same machine clock):
     log_latency_p50_ms, log_latency_p95_ms                      (goal: p95 <= 250 ms)
2. volume: a step prints 200,000 numbered lines as fast as it can:
     lines_printed, lines_received (by one subscriber), lines_stored (read back from the log store),
     lines_in_order (received and stored both in print order: 1/0)
3. fan-out: 50 subscribers on one run printing 2,000 lines:
     fanout_complete_subscribers (how many received every line, in order)
4. the log path's cost to the step (bench/logs_runner.py, run from here on its own emulator):
     runner_overhead_ratio, runner_vs_pipe_ratio                 (goal: <= 1.3)
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from websockets.sync.client import connect

from flowdeck import constants
from flowdeck.local.stack import LocalStack, free_port
from flowdeck.stores.logs import LogStore

FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
LATENCY_LINES = 200

TICKER = """import sys, time
count, every = int(sys.argv[1]), float(sys.argv[2])
start = time.time()
for i in range(count):
    # Steady rate: sleep to the next tick, then print the line's own timestamp.
    time.sleep(max(0.0, start + i * every - time.time()))
    print(f"{time.time():.6f} {i}", flush=True)
"""
FLOOD = """import sys
out = sys.stdout
for i in range(int(sys.argv[1])):
    out.write(f"{i:07d} the quick brown fox jumps over the lazy dog\\n")
"""


def write_workflows(folder: Path, lines: int, fanout_lines: int) -> None:
    (folder / "ticker.py").write_text(TICKER)
    (folder / "flood.py").write_text(FLOOD)
    (folder / "bench-latency.yaml").write_text(
        f"name: bench-latency\nsteps:\n  - id: tick\n    run: python3 ticker.py {LATENCY_LINES} 0.05\n"
    )
    (folder / "bench-volume.yaml").write_text(
        f"name: bench-volume\nsteps:\n  - id: flood\n    run: python3 flood.py {lines}\n"
    )
    (folder / "bench-fanout.yaml").write_text(
        f"name: bench-fanout\nsteps:\n  - id: tick\n    run: python3 ticker.py {fanout_lines} 0.002\n"
    )


class Subscriber(threading.Thread):
    """A WebSocket viewer of one run: records (arrival time, line text, seq) until the run ends."""

    def __init__(self, port: int, run_id: str, timeout: float, expected: int) -> None:
        super().__init__(daemon=True)
        self.url, self.run_id, self.timeout = f"ws://127.0.0.1:{port}/ws", run_id, timeout
        self.expected = expected
        self.lines: list[tuple[float, str]] = []
        self.seqs: list[int] = []
        self.ready = threading.Event()
        self.error: str | None = None

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            with connect(self.url, max_size=2**20) as ws:
                ws.send(json.dumps({"action": "subscribe", "run_id": self.run_id, "since_seq": 0}))
                self.ready.set()
                ended = False
                while time.monotonic() < deadline:
                    # All lines in: wait a little more, only to catch a duplicate. Run over and 15 s of
                    # silence: what is missing is not coming.
                    complete = len(self.lines) >= self.expected
                    try:
                        raw = ws.recv(timeout=1.0 if complete else 15.0 if ended else 30.0)
                    except TimeoutError:
                        if complete or ended:
                            return
                        continue
                    now = time.time()
                    message = json.loads(raw)
                    if message["type"] == "log":
                        if message.get("part", 1) == 1:
                            self.seqs.append(message["seq"])
                        self.lines += [(now, line["text"]) for line in message["lines"]]
                    elif message["type"] == "run" and message.get("status") in FINISHED:
                        ended = True
        except Exception as exc:
            self.error = repr(exc)
        finally:
            self.ready.set()


def start(api: httpx.Client, workflow: str) -> str:
    response = api.post(f"/workflows/{workflow}/runs", json={})
    response.raise_for_status()
    return str(response.json()["run_id"])


def watch(
    stack: LocalStack, api: httpx.Client, workflow: str, viewers: int, timeout: float, expected: int
) -> tuple[str, list[Subscriber]]:
    run_id = start(api, workflow)
    subscribers = [Subscriber(stack.port, run_id, timeout, expected) for _ in range(viewers)]
    for subscriber in subscribers:
        subscriber.start()
    for subscriber in subscribers:
        subscriber.join()
    return run_id, subscribers


def in_order(texts: list[str], expected: int) -> bool:
    return [int(t.split()[0]) for t in texts] == list(range(expected))


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--subscribers", type=int, default=50)
    parser.add_argument("--fanout-lines", type=int, default=2_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "workflows"
        folder.mkdir()
        write_workflows(folder, args.lines, args.fanout_lines)
        with (
            LocalStack(
                folder, port=free_port(), workers=1, data_dir=Path(tmp) / "data", keep_state=False
            ) as stack,
            httpx.Client(base_url=stack.api_url, timeout=30) as api,
        ):
            # 1. latency
            _, (viewer,) = watch(stack, api, "bench-latency", 1, timeout=120, expected=LATENCY_LINES)
            latencies = [(arrival - float(text.split()[0])) * 1000 for arrival, text in viewer.lines]
            print(f"log_latency_lines={len(latencies)}")
            print(f"log_latency_p50_ms={statistics.median(latencies):.0f}")
            print(f"log_latency_p95_ms={percentile(latencies, 0.95):.0f}")
            print(f"log_latency_max_ms={max(latencies):.0f}")

            # 2. volume
            began = time.monotonic()
            run_id, (viewer,) = watch(stack, api, "bench-volume", 1, timeout=900, expected=args.lines)
            received = [text for _, text in viewer.lines]
            store = LogStore(constants.LOGS_TABLE, client=stack.client("dynamodb"))
            stored = [line["text"] for line in store.search(run_id)]
            print(f"lines_printed={args.lines}")
            print(f"lines_received={len(received)}")
            print(f"lines_stored={len(stored)}")
            print(f"lines_in_order={int(in_order(received, args.lines) and in_order(stored, args.lines))}")
            print(f"volume_batches={len(viewer.seqs)} volume_seconds={time.monotonic() - began:.1f}")
            if viewer.error:
                print(f"volume_subscriber_error={viewer.error}")

            # 3. fan-out
            began = time.monotonic()
            _, viewers = watch(
                stack, api, "bench-fanout", args.subscribers, timeout=600, expected=args.fanout_lines
            )
            complete = sum(
                1
                for v in viewers
                if in_order([text.split()[1] for _, text in v.lines], args.fanout_lines)
                and v.seqs == list(range(1, len(v.seqs) + 1))
            )
            print(f"fanout_subscribers={args.subscribers}")
            print(f"fanout_complete_subscribers={complete}")
            print(f"fanout_seconds={time.monotonic() - began:.1f}")
            errors = [v.error for v in viewers if v.error]
            if errors:
                print(f"fanout_subscriber_errors={len(errors)} first={errors[0]}")
    # 4. runner overhead, measured apart: a stack's workers and stream poller would skew it.
    overhead = subprocess.run(
        [sys.executable, str(Path(__file__).with_name("logs_runner.py")), "--lines", str(args.lines)],
        capture_output=True,
        text=True,
        check=True,
    )
    for line in overhead.stdout.splitlines():
        if line.startswith(("runner_", "bare_seconds=", "stored_seconds=")):
            print(line)


if __name__ == "__main__":
    main()
