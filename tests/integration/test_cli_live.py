"""The CLI's WebSocket client against a scripted server: resume after a drop, no gap, no duplicate."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket

from flowdeck.cli.live import LiveFeed, LiveUnavailable, apply, follow
from flowdeck.local.http import ApiServer

RUN = "r1"


def log(seq: int, text: str, part: int | None = None, parts: int | None = None) -> dict[str, Any]:
    message = {
        "type": "log",
        "run_id": RUN,
        "step": "s",
        "seq": seq,
        "lines": [{"stream": "stdout", "text": text}],
    }
    return message | ({"part": part, "parts": parts} if part else {})


class Script:
    """First connection: seq 1, 2, part 1 of 3, then a drop. Later ones: everything after since_seq."""

    def __init__(self) -> None:
        self.subscriptions: list[dict[str, Any]] = []
        self.all = [log(1, "a"), log(2, "b"), log(3, "c1", 1, 2), log(3, "c2", 2, 2), log(4, "d")]

    async def endpoint(self, ws: WebSocket) -> None:
        await ws.accept()
        request = json.loads(await ws.receive_text())
        self.subscriptions.append(request)
        frames = [m for m in self.all if m["seq"] > request["since_seq"]]
        if len(self.subscriptions) == 1:
            frames = frames[:3]
        else:
            frames += [{"type": "run", "run_id": RUN, "status": "succeeded", "ended_at": None}]
        for frame in frames:
            await ws.send_text(json.dumps(frame))
        if len(self.subscriptions) == 1:
            await ws.close()
            return
        await ws.receive()  # stay open until the client leaves


@pytest.fixture
def script() -> Script:
    return Script()


@pytest.fixture
def server(script: Script) -> Iterator[ApiServer]:
    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 404, "body": ""}

    with ApiServer(api, port=0, routes=[WebSocketRoute("/ws", script.endpoint)]) as server:
        yield server


def test_feed_resumes_from_the_last_complete_seq_without_repeating_parts(
    server: ApiServer, script: Script
) -> None:
    feed = LiveFeed(f"ws://127.0.0.1:{server.port}/ws", RUN)
    lines: list[str] = []
    run = follow(feed, {}, lambda _: None, lambda batch: lines.extend(line["text"] for line in batch))
    assert [s["since_seq"] for s in script.subscriptions] == [0, 2]
    assert lines == ["a", "b", "c1", "c2", "d"]
    assert run["status"] == "succeeded"


def test_no_endpoint_is_live_unavailable() -> None:
    from flowdeck.local.stack import free_port

    with pytest.raises(LiveUnavailable):
        next(LiveFeed(f"ws://127.0.0.1:{free_port()}/ws", RUN).messages())


def test_apply_folds_step_messages_into_the_run_view() -> None:
    run: dict[str, Any] = {"run_id": RUN, "steps": [{"id": "build", "status": "pending"}]}
    apply(
        run,
        {
            "type": "step",
            "run_id": RUN,
            "step": "build",
            "status": "running",
            "attempt": 1,
            "started_at": "2026-11-21T12:00:00Z",
            "error": None,
        },
    )
    apply(run, {"type": "step", "run_id": RUN, "step": "test", "status": "pending"})
    assert [(s["id"], s["status"]) for s in run["steps"]] == [("build", "running"), ("test", "pending")]
    assert run["steps"][0]["attempt"] == 1 and run["steps"][0]["duration_s"] is not None
