"""Per-workflow concurrency on the local stack: max_runs 1 queues (in order, never overlapping) or refuses."""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.clock import parse_time
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, wait

pytestmark = pytest.mark.e2e

QUEUE = "one-at-a-time"
REJECT = "one-or-refused"
TRIGGERS = 5


def trigger_at_once(api: httpx.Client, workflow: str, **inputs: Any) -> list[httpx.Response]:
    """TRIGGERS starts of `workflow` from as many threads, released together."""
    barrier = threading.Barrier(TRIGGERS)

    def one(_: int) -> httpx.Response:
        barrier.wait()
        return api.post(f"/workflows/{workflow}/runs", json={"inputs": inputs})

    with ThreadPoolExecutor(TRIGGERS) as pool:
        return list(pool.map(one, range(TRIGGERS)))


def log_lines(folder: Path) -> list[tuple[str, str]]:
    """(start|end, run id) in the order the steps wrote them."""
    return [(line.split()[0], line.split()[1]) for line in (folder / "log").read_text().splitlines()]


def test_five_simultaneous_triggers_run_one_at_a_time_in_queue_order(
    api: httpx.Client, tmp_path: Path
) -> None:
    answers = trigger_at_once(api, QUEUE, folder=str(tmp_path))

    assert [a.status_code for a in answers] == [202] * TRIGGERS, [a.text for a in answers]
    started = {a.json()["run_id"]: a.json()["status"] for a in answers}
    assert len(started) == TRIGGERS
    assert sorted(started.values()) == ["queued"] * (TRIGGERS - 1) + ["running"]
    runs = {run_id: wait(api, run_id, timeout=180) for run_id in started}

    assert {run["status"] for run in runs.values()} == {"succeeded"}
    lines = log_lines(tmp_path)
    # Never two at once: every start is followed by the same run's end.
    assert len(lines) == 2 * TRIGGERS
    for begin, finish in zip(lines[::2], lines[1::2], strict=True):
        assert (begin[0], finish[0], begin[1]) == ("start", "end", finish[1])
    order = [run_id for kind, run_id in lines if kind == "start"]
    by_start = sorted(runs.values(), key=lambda r: r["started_at"])
    assert [r["run_id"] for r in by_start] == order
    for earlier, later in itertools.pairwise(by_start):
        assert parse_time(later["started_at"]) >= parse_time(earlier["ended_at"])  # type: ignore[operator]
    # Queued runs started in the order they were queued.
    queued = [r for r in runs.values() if r["queued_at"]]
    assert len(queued) == TRIGGERS - 1
    assert [r["run_id"] for r in sorted(queued, key=lambda r: r["queued_at"])] == order[1:]


def test_a_queued_run_shows_as_queued_with_pending_steps(api: httpx.Client, tmp_path: Path) -> None:
    first = start(api, QUEUE, folder=str(tmp_path), seconds=4)
    answer = api.post(f"/workflows/{QUEUE}/runs", json={"inputs": {"folder": str(tmp_path)}})

    assert answer.status_code == 202
    assert answer.json()["status"] == "queued"
    queued = api.get(f"/runs/{answer.json()['run_id']}").json()
    assert queued["status"] == "queued"
    assert [s["status"] for s in queued["steps"]] == ["pending"]
    assert queued["queued_at"] and queued["duration_s"] is None
    listed = api.get("/runs", params={"workflow": QUEUE, "status": "queued"}).json()["runs"]
    assert answer.json()["run_id"] in {r["run_id"] for r in listed}
    assert wait(api, first)["status"] == "succeeded"
    assert wait(api, answer.json()["run_id"])["status"] == "succeeded"


def test_reject_starts_one_of_five_simultaneous_triggers_and_refuses_four(api: httpx.Client) -> None:
    answers = trigger_at_once(api, REJECT)

    codes = sorted(a.status_code for a in answers)
    assert codes == [202] + [409] * (TRIGGERS - 1), [a.text for a in answers]
    for refused in (a for a in answers if a.status_code == 409):
        body = refused.json()
        assert set(body) == {"error", "message"}
        assert body["error"] == "ConcurrencyLimit"
        assert "max_runs" in body["message"]
    run_id = next(a.json()["run_id"] for a in answers if a.status_code == 202)
    assert wait(api, run_id)["status"] == "succeeded"
    assert [r["run_id"] for r in api.get("/runs", params={"workflow": REJECT}).json()["runs"]] == [run_id]
    # The ended run gave its slot back.
    again = api.post(f"/workflows/{REJECT}/runs", json={"inputs": {"seconds": 0}})
    assert again.status_code == 202, again.text
    assert wait(api, again.json()["run_id"])["status"] == "succeeded"


def test_a_cancelled_queued_run_never_starts_and_the_next_one_does(api: httpx.Client, tmp_path: Path) -> None:
    first = start(api, QUEUE, folder=str(tmp_path), seconds=4)
    second = start(api, QUEUE, folder=str(tmp_path), seconds=0.1)
    third = start(api, QUEUE, folder=str(tmp_path), seconds=0.1)
    assert api.get(f"/runs/{second}").json()["status"] == "queued"

    cancelled = api.post(f"/runs/{second}/cancel", json={"reason": "not needed"})

    assert cancelled.status_code == 202, cancelled.text
    assert wait(api, first)["status"] == "succeeded"
    assert wait(api, third)["status"] == "succeeded"
    second_run = wait(api, second)
    assert second_run["status"] == "cancelled"
    assert second_run["execution_arn"] is None
    assert [run_id for kind, run_id in log_lines(tmp_path) if kind == "start"] == [first, third]


def test_cli_says_a_run_is_queued_and_follow_waits_for_it(
    stack: LocalStack, api: httpx.Client, tmp_path: Path
) -> None:
    cli = CliRunner()
    base = ["--api", stack.api_url]
    first = start(api, QUEUE, folder=str(tmp_path), seconds=4)

    queued = cli.invoke(app, [*base, "run", QUEUE, "-i", f"folder={tmp_path}", "-i", "seconds=0.1"])
    assert queued.exit_code == 0, queued.output
    assert "Queued run" in queued.output
    run_id = queued.output.split("Queued run ")[1].split(":")[0].strip()
    shown = cli.invoke(app, [*base, "show", run_id])
    assert "Queued since" in shown.output, shown.output

    followed = cli.invoke(
        app, [*base, "run", QUEUE, "-i", f"folder={tmp_path}", "-i", "seconds=0.1", "--follow", "--json"]
    )

    assert followed.exit_code == 0, followed.output
    final = json.loads(followed.stdout)
    assert final["status"] == "succeeded" and final["queued_at"]
    assert wait(api, first)["status"] == "succeeded"
    assert wait(api, run_id)["status"] == "succeeded"
