"""The CLI's WebSocket client (SPEC §4): follow a run's steps and lines live, resuming after a drop."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any
from urllib.parse import urlsplit

from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI
from websockets.sync.client import ClientConnection, connect

from flowdeck.cli.sigv4 import signed_headers
from flowdeck.clock import seconds_between
from flowdeck.constants import USER_HEADER
from flowdeck.status import FINISHED_RUN_STATUSES

WS_URL_ENV = "FLOWDECK_WS_URL"
OPEN_TIMEOUT_SECONDS = 3.0
# After the run's final status, lines still on their way (separate stream) get this much quiet time.
DRAIN_SECONDS = 1.0
MAX_RECONNECTS = 5


class LiveUnavailable(Exception):
    """No WebSocket endpoint answered: the caller falls back to polling."""


def ws_url(api_url: str) -> str:
    """FLOWDECK_WS_URL, else the local stack's `/ws` on the API's host and port."""
    if explicit := os.environ.get(WS_URL_ENV):
        return explicit
    parts = urlsplit(api_url)
    scheme = "wss" if parts.scheme == "https" else "ws"
    return f"{scheme}://{parts.netloc}/ws"


class LiveFeed:
    """Messages of one run, in order: snapshot, replay, live; reconnects from the last complete seq."""

    def __init__(self, url: str, run_id: str, since_seq: int = 0, user: str | None = None) -> None:
        self.url = url
        self.run_id = run_id
        self.last_seq = since_seq
        self.user = user
        # The last (seq, part) handed out: frames resent after a reconnect are skipped.
        self._position = (since_seq, 0)

    def _open(self, stack: ExitStack) -> ClientConnection:
        """Connect (closed with `stack`) and subscribe from the last complete seq."""
        headers = {USER_HEADER: self.user} if self.user else {}
        # API Gateway's $connect route takes IAM auth: sign the handshake (no-op for the local stack).
        headers |= signed_headers("GET", self.url)
        try:
            ws = stack.enter_context(
                connect(
                    self.url, open_timeout=OPEN_TIMEOUT_SECONDS, additional_headers=headers, max_size=2**20
                )
            )
        except (OSError, InvalidHandshake, InvalidURI, TimeoutError) as exc:
            raise LiveUnavailable(f"{self.url}: {exc}") from None
        ws.send(json.dumps({"action": "subscribe", "run_id": self.run_id, "since_seq": self.last_seq}))
        return ws

    def messages(self, idle: float = 0.5) -> Iterator[dict[str, Any] | None]:
        """Yield messages as they come, and None every `idle` seconds without one (a chance to stop)."""
        for attempt in range(MAX_RECONNECTS + 1):
            with ExitStack() as stack:
                ws = self._open(stack)
                while True:
                    try:
                        raw = ws.recv(timeout=idle)
                    except TimeoutError:
                        yield None
                        continue
                    except ConnectionClosed:
                        # API Gateway ends connections after 2 h or 10 min idle: resume where we are.
                        if attempt == MAX_RECONNECTS:
                            raise
                        break
                    message = json.loads(raw)
                    if message.get("type") == "log" and not self._accept(message):
                        continue
                    yield message

    def _accept(self, message: dict[str, Any]) -> bool:
        seq, part, parts = int(message["seq"]), int(message.get("part", 1)), int(message.get("parts", 1))
        if (seq, part) <= self._position:
            return False
        self._position = (seq, part)
        if part == parts:
            self.last_seq = seq
        return True


def apply(run: dict[str, Any], message: dict[str, Any]) -> None:
    """Fold a `run` or `step` message into a run view (GET /runs/{id} shape)."""
    fields = {k: v for k, v in message.items() if k not in {"type", "run_id", "step"} and v is not None}
    if message["type"] == "run":
        run.update(fields)
        run["duration_s"] = seconds_between(run.get("started_at"), run.get("ended_at"))
        return
    steps = run.setdefault("steps", [])
    step = next((s for s in steps if s["id"] == message["step"]), None)
    if step is None:
        step = {"id": message["step"]}
        steps.append(step)
    step.update(fields)
    if step.get("started_at"):
        step["duration_s"] = seconds_between(step.get("started_at"), step.get("ended_at"))


def follow(
    feed: LiveFeed,
    run: dict[str, Any],
    on_change: Callable[[dict[str, Any]], None],
    on_lines: Callable[[list[dict[str, Any]]], None],
) -> dict[str, Any]:
    """Apply messages to `run` until it finishes and its last lines are in; the run as last seen."""
    finished, quiet_since = False, time.monotonic()
    for message in feed.messages(idle=DRAIN_SECONDS / 2):
        if message is not None:
            quiet_since = time.monotonic()
            kind = message.get("type")
            if kind == "log":
                on_lines([{"step": message["step"], **line} for line in message["lines"]])
            elif kind in {"run", "step"} and message.get("status") is not None:
                apply(run, message)
                on_change(run)
                finished = finished or run.get("status") in FINISHED_RUN_STATUSES
        if finished and time.monotonic() - quiet_since >= DRAIN_SECONDS:
            break
    return run


def follow_lines(
    feed: LiveFeed,
    on_lines: Callable[[list[dict[str, Any]]], None],
    keep: Callable[[dict[str, Any]], bool] = lambda _: True,
) -> None:
    """Every stored line of the run, then new ones as they come, until it finishes (`keep` filters)."""

    def lines(batch: list[dict[str, Any]]) -> None:
        if kept := [line for line in batch if keep(line)]:
            on_lines(kept)

    follow(feed, {}, lambda _: None, lines)
