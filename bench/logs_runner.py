"""The log path's cost to a step: one step printing 200,000 lines, under the runner vs bare.

Under the runner: `run_process` (the worker's supervisor: own process group, both pipes pumped) feeding a
`LogWriter` that stores batches in the logs table of the local emulator (moto server, its own process).
Bare: the same command, same environment, with stdout and stderr to /dev/null (the fastest a command can
print; also shown: to pipes read and discarded, `bare_pipe_seconds`).

Prints figures (name=value lines), medians of --repeat runs under the runner (and 3x as many bare):
  bare_seconds, runner_seconds      the command's wall time, start to exit (runner: all output read)
  runner_overhead_ratio             runner_seconds / bare_seconds (to /dev/null)       (goal <= 1.3)
  runner_vs_pipe_ratio              runner_seconds / bare_pipe_seconds
  stored_seconds                    start until every line is stored (LogWriter.close returned)
  stored_overhead_ratio             stored_seconds / bare_seconds (what DynamoDB throughput adds)
  lines_printed, lines_stored       read back with LogStore.search; lines_in_order 1/0
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import boto3

from flowdeck.runner.logs import LogWriter
from flowdeck.runner.process import run_process
from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_logs_table_kwargs

TABLE = "bench-logs"
PRINTER = "import sys; [sys.stdout.write(f'line {i}\\n') for i in range(int(sys.argv[1]))]"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_emulator(port: int, log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "flowdeck.local.emulator", "--port", str(port)],
            stdout=out,
            stderr=out,
            env=os.environ | {"MOTO_PORT": str(port)},
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return process
        time.sleep(0.1)
    process.kill()
    raise RuntimeError("the emulator did not start")


# As a step gets it (the worker passes its own environment minus FLOWDECK_*): no PYTHONUNBUFFERED,
# which would make the printer write line by line in both cases.
ENV = {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}


def bare(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV, check=True)
    return time.monotonic() - started


def bare_pipe(argv: list[str]) -> float:
    started = time.monotonic()
    subprocess.run(argv, capture_output=True, env=ENV, check=True)
    return time.monotonic() - started


def under_runner(argv: list[str], store: LogStore, run_id: str, workdir: Path) -> tuple[float, float]:
    writer = LogWriter(store, run_id, "print", attempt=1, retention_hours=1)
    env = ENV
    started = time.monotonic()
    outcome = run_process(argv, env, workdir, 600, writer, threading.Event())
    ran = time.monotonic() - started
    writer.close()
    stored = time.monotonic() - started
    if outcome.exit_code != 0 or writer.lines_dropped:
        raise RuntimeError(f"exit {outcome.exit_code}, {writer.lines_dropped} lines dropped")
    return ran, stored


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    argv = [sys.executable, "-c", PRINTER, str(args.lines)]
    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        emulator = start_emulator(port, Path(tmp) / "emulator.log")
        try:
            ddb = boto3.client(
                "dynamodb",
                region_name="us-east-1",
                endpoint_url=f"http://127.0.0.1:{port}",
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any credentials
            )
            ddb.create_table(**create_logs_table_kwargs(TABLE))
            # As the worker builds it: no client-side parameter validation on the hot path.
            fast = boto3.client(
                "dynamodb",
                region_name="us-east-1",
                endpoint_url=f"http://127.0.0.1:{port}",
                aws_access_key_id="local",
                aws_secret_access_key="local",  # noqa: S106
                config=boto3.session.Config(parameter_validation=False),
            )
            store = LogStore(TABLE, fast)
            bare(argv)  # warm-up: the interpreter's files in the page cache
            bares, pipes, runs, stores = [], [], [], []
            for i in range(args.repeat):
                # The bare runs are cheap: several per round steady their median on a busy machine.
                bares += [bare(argv) for _ in range(3)]
                pipes += [bare_pipe(argv) for _ in range(3)]
                ran, stored = under_runner(argv, store, f"bench-{i}", Path(tmp))
                runs.append(ran)
                stores.append(stored)
                figures = f"bare {bares[-1]:.3f} pipe {pipes[-1]:.3f} runner {ran:.3f} stored {stored:.3f}"
                print(f"# run {i + 1}: {figures}", flush=True)
            texts = [line["text"] for line in LogStore(TABLE, ddb).search(f"bench-{args.repeat - 1}")]
        finally:
            emulator.terminate()
            try:
                emulator.wait(10)
            except subprocess.TimeoutExpired:
                emulator.kill()
    base = statistics.median(bares)
    print(f"bare_seconds={base:.3f}")
    print(f"bare_pipe_seconds={statistics.median(pipes):.3f}")
    print(f"runner_seconds={statistics.median(runs):.3f}")
    print(f"runner_overhead_ratio={statistics.median(runs) / base:.2f}")
    print(f"runner_vs_pipe_ratio={statistics.median(runs) / statistics.median(pipes):.2f}")
    print(f"stored_seconds={statistics.median(stores):.3f}")
    print(f"stored_overhead_ratio={statistics.median(stores) / base:.2f}")
    print(f"lines_printed={args.lines}")
    print(f"lines_stored={len(texts)}")
    print(f"lines_in_order={int(texts == [f'line {i}' for i in range(args.lines)])}")


if __name__ == "__main__":
    main()
