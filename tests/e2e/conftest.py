"""End-to-end helpers over the session's local stack (tests/conftest.py): real emulator, workers, HTTP."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_contract import api_contract

from flowdeck.local.stack import LocalStack

HERE = Path(__file__).parent
REPO = HERE.parent.parent
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}


def keeps_the_openapi_contract(response: httpx.Response) -> None:
    """An answer of the local stack has its status documented and a body its schema accepts."""
    response.read()
    problems = api_contract().problems(
        response.request.method,
        response.request.url.path,
        response.status_code,
        dict(response.headers),
        response.text,
    )
    assert not problems, "the answer breaks /openapi.json: " + "; ".join(problems)


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url,
        headers={"X-Flowdeck-User": "e2e@example.com"},
        timeout=30,
        event_hooks={"response": [keeps_the_openapi_contract]},
    ) as client:
        yield client


def start(api: httpx.Client, workflow: str, **inputs: Any) -> str:
    response = api.post(f"/workflows/{workflow}/runs", json={"inputs": inputs})
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


def wait(api: httpx.Client, run_id: str, timeout: float = 60.0) -> dict[str, Any]:
    """Poll until the run is finished (and its record final); fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/runs/{run_id}")
        if response.status_code == 200 and response.json()["status"] in FINISHED:
            return dict(response.json())
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish within {timeout}s: {api.get(f'/runs/{run_id}').text}")


def step_pid(pidfile: Path, timeout: float) -> int:
    """The pid a step wrote to its file once it started; fail the test if it never does."""
    deadline = time.monotonic() + timeout
    while not pidfile.exists() or not pidfile.read_text():
        assert time.monotonic() < deadline, "the step never started"
        time.sleep(0.05)
    return int(pidfile.read_text())


def steps_by_id(run: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {step["id"]: step for step in run["steps"]}
