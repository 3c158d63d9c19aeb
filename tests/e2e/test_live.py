"""The live view end to end: real workers print, real streams fan out, real WebSocket clients watch."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner
from websockets.sync.client import ClientConnection, connect

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack, free_port
from tests.e2e.conftest import start, wait

LINES = [f"line {i}" for i in range(1, 61)] + ["done"]


@pytest.fixture(scope="module")
def stack(workflows_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """A local stack for this module only."""
    # Not the session's: it has a SIGKILLed worker whose dead long-poll (moto does not notice the
    # client is gone) can swallow the next step message for a visibility timeout.
    local = LocalStack(
        workflows_dir, port=free_port(), workers=1, data_dir=tmp_path_factory.mktemp("live"), keep_state=False
    )
    with local:  # on leaving, the session's stack gets this process's settings back
        yield local


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"X-Flowdeck-User": "e2e@example.com"}, timeout=30
    ) as client:
        yield client


@contextmanager
def open_ws(stack: LocalStack, run_id: str, since_seq: int = 0) -> Iterator[ClientConnection]:
    """A WebSocket subscribed to the run from `since_seq`."""
    url = f"ws://127.0.0.1:{stack.port}/ws"
    with connect(url, additional_headers={"X-Flowdeck-User": "e2e@example.com"}) as ws:
        ws.send(json.dumps({"action": "subscribe", "run_id": run_id, "since_seq": since_seq}))
        yield ws


def read_until(
    ws: ClientConnection, done: Any, timeout: float = 30.0, into: list[dict[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """Messages until `done(messages)` is true; fail on timeout."""
    messages = into if into is not None else []
    deadline = time.monotonic() + timeout
    while not done(messages):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out; got {len(messages)} messages, last: {messages[-3:]}")
        try:
            messages.append(json.loads(ws.recv(timeout=0.5)))
        except TimeoutError:
            continue
    return messages


def logs(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in messages if m["type"] == "log"]


def texts(messages: list[dict[str, Any]]) -> list[str]:
    return [line["text"] for m in logs(messages) for line in m["lines"]]


def finished(messages: list[dict[str, Any]]) -> bool:
    return "done" in texts(messages) and any(
        m["type"] == "run" and m["status"] == "succeeded" for m in messages
    )


def assert_contiguous(messages: list[dict[str, Any]], first: int = 1) -> None:
    seqs = [m["seq"] for m in logs(messages)]
    assert seqs == list(range(first, first + len(seqs))), seqs


def test_two_viewers_early_and_late_see_every_line_in_order(stack: LocalStack, api: httpx.Client) -> None:
    run_id = start(api, "chatty")
    with open_ws(stack, run_id) as early:
        early_messages = read_until(early, lambda m: "line 10" in texts(m))
        with open_ws(stack, run_id, since_seq=0) as late:
            late_messages = read_until(late, finished)
        read_until(early, finished, into=early_messages)
    for messages in (early_messages, late_messages):
        assert texts(messages) == LINES
        assert_contiguous(messages)
    steps = [m for m in early_messages if m["type"] == "step"]
    assert {(m["step"], m["status"]) for m in steps} >= {("talk", "running"), ("talk", "succeeded")}
    assert early_messages[0]["type"] == "run"  # the snapshot comes first
    assert wait(api, run_id)["status"] == "succeeded"


def test_reconnect_with_last_seq_resumes_without_gap_or_duplicate(
    stack: LocalStack, api: httpx.Client
) -> None:
    run_id = start(api, "chatty")
    with open_ws(stack, run_id) as first:
        before = read_until(first, lambda m: "line 15" in texts(m))
    last_seq = logs(before)[-1]["seq"]
    time.sleep(0.3)  # the run goes on while no one watches
    with open_ws(stack, run_id, since_seq=last_seq) as second:
        after = read_until(second, finished)
    assert_contiguous(after, first=last_seq + 1)
    assert texts(before) + texts(after) == LINES


def test_bad_subscribe_gets_an_error_frame_and_the_connection_stays(stack: LocalStack) -> None:
    with connect(f"ws://127.0.0.1:{stack.port}/ws") as ws:
        ws.send(json.dumps({"action": "subscribe", "since_seq": "soon"}))
        error = json.loads(ws.recv(timeout=10))
        ws.send(json.dumps({"action": "subscribe", "run_id": "no-such-run"}))
        answer = json.loads(ws.recv(timeout=10))
    assert error["type"] == "error" and error["error"] == "BadRequest"
    assert answer == {"type": "run", "run_id": "no-such-run", "status": None}


def test_cli_run_follow_prints_lines_and_the_final_step_list(stack: LocalStack) -> None:
    result = CliRunner().invoke(app, ["--api", stack.api_url, "run", "chatty", "--follow"])
    assert result.exit_code == 0, result.output
    assert "[talk] line 1\n" in result.output and "[talk] line 60\n" in result.output
    assert result.output.index("[after] done") < result.output.index("Status: Succeeded")


def test_cli_logs_follow_replays_a_finished_run(stack: LocalStack, api: httpx.Client) -> None:
    run_id = start(api, "chatty")
    wait(api, run_id)
    result = CliRunner().invoke(app, ["--api", stack.api_url, "logs", run_id, "--follow", "--step", "talk"])
    assert result.exit_code == 0, result.output
    assert [line.removeprefix("[talk] ") for line in result.output.splitlines()] == LINES[:-1]
