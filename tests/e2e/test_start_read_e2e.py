"""On the local stack: a run is readable the moment its start answered, with several clients at once."""

from __future__ import annotations

import threading
from typing import Any

import httpx

from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import wait


def test_runs_started_by_several_clients_at_once_are_each_readable_at_once(
    stack: LocalStack, api: httpx.Client
) -> None:
    seen: list[tuple[str, int, Any]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(3)

    def client(who: str) -> None:
        with httpx.Client(base_url=stack.api_url, headers={"X-Flowdeck-User": who}, timeout=30) as own:
            barrier.wait()
            for _ in range(3):
                started = own.post("/workflows/hello/runs", json={"inputs": {"who": who}})
                assert started.status_code == 202, started.text
                read = own.get(f"/runs/{started.json()['run_id']}")
                with lock:
                    seen.append((who, read.status_code, read.json()))

    threads = [threading.Thread(target=client, args=(f"c{i}@example.com",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(seen) == 9
    for who, status, run in seen:
        assert status == 200, run
        assert run["status"] in ("queued", "running") and run["started_by"] == who
        assert run["inputs"] == {"who": who} and run["trigger"] == "manual"
        assert [s["id"] for s in run["steps"]] == ["greet"]
    # The state machine's own record merges into the start's: each run still ends as it should.
    last = wait(api, seen[-1][2]["run_id"])
    assert last["status"] == "succeeded" and last["started_by"] == seen[-1][0]
    assert last["inputs"] == {"who": seen[-1][0]} and last["execution_arn"]
