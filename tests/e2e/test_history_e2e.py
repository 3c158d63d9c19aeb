"""Run history on the local stack: a finished run is found by every index it belongs to."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from tests.e2e.conftest import start, wait

USER = "e2e@example.com"  # the api fixture's X-Flowdeck-User


def listed(api: httpx.Client, **query: Any) -> list[dict[str, Any]]:
    response = api.get("/runs", params=query | {"limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["runs"])


def test_a_finished_run_is_in_every_history_index_with_its_duration(api: httpx.Client) -> None:
    since = (datetime.now(UTC) - timedelta(seconds=1)).isoformat()
    run_id = start(api, "hello", who="history")
    run = wait(api, run_id)

    # The duration index is written by the run-events reaction a moment after the run ends.
    deadline = time.monotonic() + 30
    while run_id not in [r["run_id"] for r in listed(api, sort="duration", workflow="hello")]:
        assert time.monotonic() < deadline, "the run never entered the duration index"
        time.sleep(0.2)

    for query in (
        {},
        {"workflow": "hello"},
        {"status": run["status"]},
        {"trigger": "manual"},
        {"started_by": USER, "since": since},
        {"workflow": "hello", "status": run["status"], "since": since},
        {"sort": "cost"},
        {"sort": "cost", "workflow": "hello"},
        {"sort": "duration"},
    ):
        rows = {r["run_id"]: r for r in listed(api, **query)}
        assert run_id in rows, query
        assert rows[run_id]["duration_s"] == run["duration_s"]
        assert (rows[run_id]["trigger"], rows[run_id]["started_by"]) == ("manual", USER)
