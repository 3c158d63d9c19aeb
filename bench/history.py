"""Run history at scale: 100,000 runs in the emulator's runs table, one page per filter combination.

Loads runs across 20 workflows, 5 triggers, 7 statuses, 50 users and 90 days (skewed as real history is:
most runs succeed, a few users start most runs) into the local DynamoDB (moto's server, the local stack's
emulator), with BatchWriteItem from several threads. Then reads one page of 50 of each filter combination
through the real code path (RunService.list_runs -> RunStore.read_history -> Query) and prints its latency
and read ratio: index entries evaluated (ScannedCount, summed over the page's queries) / runs returned.

`history_max_read_ratio` is the worst of the combinations the history's goal covers (every single filter,
workflow+status, status+date range; goal <= 2), `history_max_read_ratio_all` the worst of all. Latency is
the emulator's: moto evaluates a Query by walking every item of the table, which DynamoDB does not.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
from botocore.config import Config

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from flowdeck.clock import duration_ms  # noqa: E402
from flowdeck.local.stack import _wait_for_port, free_port  # noqa: E402
from flowdeck.runs.service import RunQuery, RunService  # noqa: E402
from flowdeck.stores.runs import RunStore  # noqa: E402
from flowdeck.stores.schema import create_table_kwargs, workflow_status  # noqa: E402

TABLE = "flowdeck-runs-bench"
GOAL_READ_RATIO = 2.0
PAGE = 50
WORKFLOWS = [f"wf-{n:02d}" for n in range(20)]
STATUSES = {
    "succeeded": 70,
    "failed": 12,
    "cancelled": 5,
    "timed_out": 2,
    "running": 5,
    "queued": 3,
    "waiting": 3,
}
TRIGGERS = {"manual": 35, "schedule": 35, "webhook": 15, "git": 10, "event": 5}
USERS = [f"user-{n:02d}@example.com" for n in range(50)]
DAYS = 90
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}


def run_items(count: int, now: datetime, seed: int = 8) -> list[dict[str, Any]]:
    """`count` run items as RecordRunStart, the workers and the duration reaction leave them (wire form)."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    statuses, status_weights = list(STATUSES), list(STATUSES.values())
    triggers, trigger_weights = list(TRIGGERS), list(TRIGGERS.values())
    user_weights = [1 / (n + 1) for n in range(len(USERS))]  # a few people start most runs
    workflow_weights = [1 / (n + 1) ** 0.7 for n in range(len(WORKFLOWS))]
    items = []
    for n in range(count):
        workflow = rng.choices(WORKFLOWS, workflow_weights)[0]
        status = rng.choices(statuses, status_weights)[0]
        started = now - timedelta(seconds=rng.uniform(0, DAYS * 86400))
        started_at = started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        run_id = f"{started:%Y%m%d-%H%M%S}-{n:08x}"
        cost = (Decimal(rng.lognormvariate(-3, 1.5)) if rng.random() < 0.6 else Decimal(0)).quantize(
            Decimal("0.000001")
        )
        item: dict[str, Any] = {
            "pk": {"S": run_id},
            "sk": {"S": "RUN"},
            "run_id": {"S": run_id},
            "kind": {"S": "run"},
            "workflow": {"S": workflow},
            "status": {"S": status},
            "workflow_status": {"S": workflow_status(workflow, status)},
            "trigger": {"S": rng.choices(triggers, trigger_weights)[0]},
            "started_by": {"S": rng.choices(USERS, user_weights)[0]},
            "started_at": {"S": started_at},
            "run_started_at": {"S": started_at},
            "cost_usd": {"N": str(cost)},
            "run_cost_usd": {"N": str(cost)},
            "inputs_json": {"S": '{"environment": "production", "replicas": 2}'},
            "plan": {
                "L": [{"M": {"id": {"S": s}, "kind": {"S": "run"}}} for s in ("plan", "apply", "health")]
            },
            "execution_arn": {
                "S": f"arn:aws:states:us-east-1:123456789012:execution:flowdeck-{workflow}:{run_id}"
            },
        }
        if status in FINISHED:
            ended_at = (
                (started + timedelta(seconds=rng.lognormvariate(4, 1))).isoformat().replace("+00:00", "Z")
            )
            item["ended_at"] = {"S": ended_at}
            item["duration_ms"] = {"N": str(duration_ms(started_at, ended_at))}
        items.append(item)
    return items


def load(client: Any, items: list[dict[str, Any]], threads: int) -> float:
    """BatchWriteItem in 25s from `threads` threads (unprocessed items resent); the seconds it took."""
    batches = [items[i : i + 25] for i in range(0, len(items), 25)]

    def write(batch: list[dict[str, Any]]) -> None:
        request = {TABLE: [{"PutRequest": {"Item": item}} for item in batch]}
        while request:
            request = client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}

    started = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(write, batches))
    return time.perf_counter() - started


class ReadCounter:
    """ScannedCount and Count of every Query the store makes."""

    def __init__(self, client: Any) -> None:
        self.scanned = self.returned = self.queries = 0
        client.meta.events.register("after-call.dynamodb.Query", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.scanned += parsed.get("ScannedCount", 0)
        self.returned += parsed.get("Count", 0)
        self.queries += 1

    def reset(self) -> None:
        self.scanned = self.returned = self.queries = 0


def combinations(now: datetime) -> list[tuple[str, dict[str, Any], bool]]:
    """(name, GET /runs query, covered by the <= 2 goal)."""
    week = {"since": (now - timedelta(days=7)).replace(microsecond=0)}
    month = {
        "since": (now - timedelta(days=40)).replace(microsecond=0),
        "until": (now - timedelta(days=10)).replace(microsecond=0),
    }
    return [
        ("none", {}, True),
        ("workflow", {"workflow": "wf-03"}, True),
        ("status", {"status": "failed"}, True),
        ("status_rare", {"status": "timed_out"}, True),
        ("trigger", {"trigger": "git"}, True),
        ("started_by", {"started_by": "user-07@example.com"}, True),
        ("date_range", month, True),
        ("since_7d", week, True),
        ("workflow_status", {"workflow": "wf-03", "status": "failed"}, True),
        ("status_date_range", {"status": "failed", **month}, True),
        ("workflow_status_date", {"workflow": "wf-03", "status": "failed", **month}, False),
        ("workflow_trigger", {"workflow": "wf-03", "trigger": "schedule"}, False),
        ("workflow_date_range", {"workflow": "wf-03", **month}, False),
        ("trigger_user", {"trigger": "git", "started_by": "user-07@example.com"}, False),
        ("status_trigger", {"status": "failed", "trigger": "webhook"}, False),
        ("user_date_range", {"started_by": "user-07@example.com", **week}, False),
        ("oldest_first", {"order": "asc"}, False),
        ("sort_cost", {"sort": "cost"}, False),
        ("sort_cost_asc", {"sort": "cost", "order": "asc"}, False),
        ("sort_duration", {"sort": "duration"}, False),
        ("sort_cost_workflow", {"sort": "cost", "workflow": "wf-03"}, False),
        ("sort_duration_workflow", {"sort": "duration", "workflow": "wf-03"}, False),
        ("sort_cost_status", {"sort": "cost", "status": "failed"}, False),
        ("sort_duration_date_range", {"sort": "duration", **month}, False),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()

    port = free_port()
    env = os.environ | {"MOTO_PORT": str(port)}
    log = tempfile.TemporaryFile()  # noqa: SIM115 - the emulator writes to it until the end
    emulator = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.local.emulator", "--port", str(port)],
        stdout=log,
        stderr=log,
        env=env,
        stdin=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, emulator)
        client = boto3.client(
            "dynamodb",
            endpoint_url=f"http://127.0.0.1:{port}",
            region_name="us-east-1",
            aws_access_key_id="local",
            aws_secret_access_key="local",  # noqa: S106 - the emulator accepts any credentials
            config=Config(max_pool_connections=args.threads * 2, retries={"max_attempts": 10}),
        )
        client.create_table(**create_table_kwargs(TABLE))
        now = datetime.now(UTC)
        items = run_items(args.runs, now)
        seconds = load(client, items, args.threads)
        print(f"history_runs_loaded={len(items)}")
        print(f"history_load_seconds={seconds:.1f}")
        print(f"history_load_items_per_second={len(items) / seconds:.0f}")

        counter = ReadCounter(client)
        service = RunService(catalog=None, runs=RunStore(TABLE, client), executions=None)  # type: ignore[arg-type]
        goal, every = [], []
        print(f"{'combination':<26} {'ms':>8} {'queries':>7} {'read':>5} {'returned':>8} {'ratio':>6}  more")
        for name, query, covered in combinations(now):
            counter.reset()
            started = time.perf_counter()
            page = service.list_runs(RunQuery(**query, limit=PAGE))
            elapsed_ms = (time.perf_counter() - started) * 1000
            returned = len(page["runs"])
            ratio = counter.scanned / max(returned, 1)
            (goal if covered else []).append(ratio)
            every.append(ratio)
            more = "yes" if page["next_cursor"] else "no"
            print(
                f"{name:<26} {elapsed_ms:>8.0f} {counter.queries:>7} {counter.scanned:>5} {returned:>8}"
                f" {ratio:>6.2f}  {more}"
            )
            print(f"history_{name}_page_ms={elapsed_ms:.0f}")
            print(f"history_{name}_read_ratio={ratio:.2f}")
        print(f"history_max_read_ratio={max(goal):.2f}")
        print(f"history_max_read_ratio_all={max(every):.2f}")
        print(f"history_goal_read_ratio={GOAL_READ_RATIO:.0f}")
    finally:
        emulator.terminate()
        emulator.wait(timeout=30)


if __name__ == "__main__":
    main()
