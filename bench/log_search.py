"""A search over a 200,000-line step's stored log, and its first page, as the API reads them: where
the time goes; prints figures (name=value lines).

One emulator (the local stack's, `flowdeck.local.emulator`, nothing else calling it) holds the same
lines twice: run `text` in the layout stored before (one JSON string per batch, the whole batch parsed
to search it) and run `zlib` as the LogWriter stores them now (compressed JSON, only the lines holding
the needle parsed). The same reads (`LogService.page`) over each, `--runs` times, interleaved:
`search` (q="99 the": exactly 2,000 lines) and `first_page` (limit=500, as the dashboard opens a log):
  log_{read}_{layout}_ms               wall clock of one read (median)
  log_{read}_{layout}_query_pages      DynamoDB Query pages it read (1 MB each at most, as on AWS)
  log_{read}_{layout}_stored_kb        the bytes of the `lines` attributes those pages held
  log_{read}_{layout}_emulator_cpu_ms  CPU the emulator spent answering those Queries (median)
  log_{read}_{layout}_reader_cpu_ms    CPU of the reading thread: HTTP, parse, decode, match (median)
CPU times barely change with what else the machine runs; the wall clock does.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import boto3

from flowdeck.local.stack import _wait_for_port, free_port
from flowdeck.runner.logs import LogWriter
from flowdeck.runs.logs import LogQuery, LogService
from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_logs_table_kwargs

TABLE = "bench-logs"
NEEDLE = "99 the"
LAYOUTS = ("text", "zlib")
FIRST_PAGE = 500
# The dashboard's reads: a search, and the first lines of a log it opens.
READS = {"search": LogQuery(q=NEEDLE), "first_page": LogQuery(limit=FIRST_PAGE)}
FIGURES = ("ms", "query_pages", "stored_kb", "emulator_cpu_ms", "reader_cpu_ms")


class FinishedRuns(LogService):
    """The log use cases for runs that all finished (no runs table here: the search reads the logs)."""

    def run_status(self, run_id: str) -> str:
        return "succeeded"


class Batches:
    """A LogStore stand-in that keeps the LogWriter's batches, to store them in the earlier layout."""

    def __init__(self) -> None:
        self.batches: list[list[dict[str, Any]]] = []

    def append(
        self, run_id: str, step: str, attempt: int, lines: list[dict[str, Any]], expires_at: int
    ) -> int:
        self.batches.append(list(lines))
        return len(self.batches)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def write(writer: LogWriter, lines: int) -> None:
    """The flood step's output, fed as pipe reads of 64 KiB."""
    data = "".join(f"{i:07d} the quick brown fox jumps over the lazy dog\n" for i in range(lines)).encode()
    for at in range(0, len(data), 1 << 16):
        writer.feed("stdout", data[at : at + (1 << 16)])
    writer.close()


def store(ddb: Any, lines: int) -> None:
    """The same lines under run `zlib` (today's writer) and run `text` (the earlier layout)."""
    write(LogWriter(LogStore(TABLE, ddb), "zlib", "flood"), lines)
    kept = Batches()
    write(LogWriter(kept, "text", "flood"), lines)  # type: ignore[arg-type]
    for seq, batch in enumerate(kept.batches, start=1):
        text = json.dumps(batch, separators=(",", ":"), ensure_ascii=False)
        item = {
            "run_id": {"S": "text"},
            "seq": {"N": str(seq)},
            "step": {"S": "flood"},
            "attempt": {"N": "1"},
        }
        ddb.put_item(TableName=TABLE, Item=item | {"lines": {"S": text}, "expires_at": {"N": "0"}})


def read(service: LogService, ddb: Any, emulator_pid: int, run_id: str, query: LogQuery) -> dict[str, float]:
    """One read; its figures."""
    pages: list[int] = []

    def count(parsed: dict[str, Any], **_: Any) -> None:
        pages.append(sum(len(next(iter(i["lines"].values()))) for i in parsed.get("Items", [])))

    ddb.meta.events.register("after-call.dynamodb.Query", count)
    emulator_at, reader_at, began = cpu_seconds(emulator_pid), time.thread_time(), time.perf_counter()
    found = service.page(run_id, query)["lines"]
    wall, reader = time.perf_counter() - began, time.thread_time() - reader_at
    emulator = cpu_seconds(emulator_pid) - emulator_at
    ddb.meta.events.unregister("after-call.dynamodb.Query", count)
    return {
        "lines": len(found),
        "ms": wall * 1000,
        "query_pages": len(pages),
        "stored_kb": sum(pages) / 1024,
        "emulator_cpu_ms": emulator * 1000,
        "reader_cpu_ms": reader * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=9)
    args = parser.parse_args()
    port = free_port()
    emulator = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.local.emulator", "--port", str(port)],
        env=os.environ | {"MOTO_PORT": str(port)},
        stdout=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, emulator)
        ddb = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any credentials
        )
        kwargs = create_logs_table_kwargs(TABLE)
        kwargs.pop("StreamSpecification")  # no stream consumer here: the search reads the table only
        ddb.create_table(**kwargs)
        store(ddb, args.lines)
        service = FinishedRuns(LogStore(TABLE, ddb), runs=None)  # type: ignore[arg-type]
        figures: dict[str, list[dict[str, float]]] = {
            f"{r}_{layout}": [] for r in READS for layout in LAYOUTS
        }
        for _ in range(args.runs):
            for name, query in READS.items():
                for layout in LAYOUTS:
                    figures[f"{name}_{layout}"].append(read(service, ddb, emulator.pid, layout, query))
    finally:
        emulator.terminate()
        emulator.wait()
    for key, runs in figures.items():
        lines = runs[0]["lines"]
        # One numbered line in a hundred ends in "99 the"; a first page ends with the batch reaching 500.
        right = lines == args.lines // 100 if key.startswith("search") else lines >= FIRST_PAGE
        if not right:
            raise SystemExit(f"{key} found {lines} lines")
        for name in FIGURES:
            print(f"log_{key}_{name}={statistics.median(run[name] for run in runs):.0f}")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
