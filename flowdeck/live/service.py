"""Live view service (SPEC §4): WebSocket subscriptions, replay-then-live log delivery and status fan-out.

Delivery to one connection is exactly once and in order. Every sender (the `subscribe` replay and the
stream fan-out, possibly several at once) goes through `LiveService.pump`, which holds a short
per-connection send lease on the connection item:

- the lease holder reads `batches_after(run_id, last_seq)`, and for each batch first advances
  `last_seq` from seq-1 to seq (conditional write), then posts it: no seq is claimed twice;
- a sender that finds the lease taken sets `pending` on the item; the holder releases only if
  `pending` is unset, else it clears it and reads again. So a batch stored while another sender
  holds the lease is picked up by that holder, never dropped, and posts never overtake each other.

The frames are built in flowdeck.live.frames; the connection items live in flowdeck.stores.connections.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowdeck.errors import RunNotFound
from flowdeck.live.frames import dump, error_frame, log_frames, snapshot_messages
from flowdeck.live.poster import Gone
from flowdeck.stores.connections import Connections

REPLAY_PAGE = 100
ENDED = {"succeeded", "failed", "skipped", "cancelled", "timed_out"}
FANOUT_THREADS = 16

logger = logging.getLogger(__name__)


class LogBatches(Protocol):
    """What the live view reads from the log store (flowdeck.stores.logs.LogStore)."""

    def batches_after(
        self, run_id: str, since_seq: int, limit: int | None = None
    ) -> list[dict[str, Any]]: ...


class Runs(Protocol):
    """What the live view reads for the snapshot (flowdeck.runs.service.RunService)."""

    def get_run(self, run_id: str) -> dict[str, Any]: ...


class Subscribe(BaseModel):
    """Body of the `subscribe` action."""

    model_config = ConfigDict(extra="forbid")
    action: str = "subscribe"
    run_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    since_seq: int = Field(default=0, ge=0)


def _contiguous(batches: dict[int, dict[str, Any]], last: int) -> list[dict[str, Any]]:
    """The batches last+1, last+2, ... up to the first missing seq."""
    run = []
    while last + 1 in batches:
        last += 1
        run.append(batches[last])
    return run


class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> None: ...


class LiveService:
    """Connect, subscribe (snapshot + replay), and fan out new log batches and status changes."""

    def __init__(
        self,
        connections: Connections,
        logs: LogBatches,
        runs: Runs,
        poster: Poster,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connections = connections
        self.logs = logs
        self.runs = runs
        self.poster = poster
        self.clock = clock

    # -- connection lifecycle ---------------------------------------------------------------------
    def connect(self, connection_id: str, user: str) -> None:
        self.connections.add(connection_id, user, self.clock())

    def disconnect(self, connection_id: str) -> None:
        self.connections.remove(connection_id)

    def subscribe(self, connection_id: str, body: str | None) -> None:
        """Handle a `subscribe` message: snapshot, then replay after since_seq, then live."""
        try:
            request = Subscribe.model_validate_json(body or "")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            self.send(connection_id, error_frame("BadRequest", problems[:1000]))
            return
        try:
            run = self.runs.get_run(request.run_id)
        except RunNotFound:
            run = None
        if not self.connections.subscribe(connection_id, request.run_id, request.since_seq, self.clock()):
            return
        if run is None:
            # The run may not be recorded yet (just started): stay subscribed; live frames will follow.
            self.send(connection_id, dump({"type": "run", "run_id": request.run_id, "status": None}))
        else:
            for message in snapshot_messages(run):
                if not self.send(connection_id, dump(message)):
                    return
        self.pump(connection_id, request.run_id)

    # -- fan-out ----------------------------------------------------------------------------------
    def on_log_batches(self, run_id: str, batches: Iterable[dict[str, Any]]) -> None:
        """New log batches of a run were stored: bring every subscriber up to date."""
        known = {int(b["seq"]): b for b in batches}
        subscribers = self.connections.subscribers(run_id)
        self._each(subscribers, lambda c: self.pump(c["connection_id"], run_id, known))

    def on_status(self, message: dict[str, Any]) -> None:
        """A run or step changed: push the state to every subscriber of the run."""
        frame = dump(message)
        run_id = message["run_id"]
        # Workers store a step's last lines before its end: a final status also catches subscribers up,
        # in case the by-run index (eventually consistent) missed a fresh subscriber for those lines.
        catch_up = message.get("status") in ENDED

        def push(connection: dict[str, Any]) -> None:
            if self.send(connection["connection_id"], frame) and catch_up:
                self.pump(connection["connection_id"], run_id)

        self._each(self.connections.subscribers(run_id), push)

    def _each(self, connections: list[dict[str, Any]], work: Callable[[dict[str, Any]], object]) -> None:
        if len(connections) <= 1:
            for connection in connections:
                work(connection)
            return
        with ThreadPoolExecutor(max_workers=min(FANOUT_THREADS, len(connections))) as pool:
            for future in [pool.submit(work, c) for c in connections]:
                future.result()

    # -- exactly once, in order -------------------------------------------------------------------
    def pump(self, connection_id: str, run_id: str, known: dict[int, dict[str, Any]] | None = None) -> None:
        """Send the connection every stored batch after its last_seq, once each, in order (see module doc)."""
        sender = secrets.token_hex(8)
        known = known or {}
        item, claimed = None, []
        if known:
            # Fast path: the lease and the stream's next batches in one write; no read of the logs table.
            claimed = _contiguous(known, min(known) - 1)
            span = (int(claimed[0]["seq"]), int(claimed[-1]["seq"]))
            item = self.connections.acquire(connection_id, run_id, sender, self.clock(), claim=span)
        if item is None:
            claimed = []
            item = self.connections.acquire(connection_id, run_id, sender, self.clock())
        if item is None:
            if not self.connections.mark_pending(connection_id, run_id):
                return
            # The holder may have released before seeing `pending`: try once more.
            item = self.connections.acquire(connection_id, run_id, sender, self.clock())
            if item is None:
                return
        gen, last = str(item.get("gen", "")), int(item.get("last_seq", 0))
        try:
            if not all(self._send_batch(connection_id, run_id, batch) for batch in claimed):
                return
            # A batch stored after the stream's has its own record, whose pump (or `pending`) brings it.
            read = not claimed or last < max(known)
            while True:
                while read:
                    page = self.logs.batches_after(run_id, last, REPLAY_PAGE)
                    batches = _contiguous({int(b["seq"]): b for b in page}, last)
                    if not batches:
                        break
                    top = int(batches[-1]["seq"])
                    if not self.connections.claim(connection_id, sender, gen, last, top):
                        return  # re-subscribed meanwhile: that subscription's replay carries on
                    last = top
                    if not all(self._send_batch(connection_id, run_id, batch) for batch in batches):
                        return
                    read = len(page) == REPLAY_PAGE and len(batches) == len(page)
                if self.connections.release(connection_id, sender):
                    return
                # `pending` was set by a sender that found the lease taken: take it again, read again.
                item = self.connections.acquire(connection_id, run_id, sender, self.clock())
                if item is None or str(item.get("gen", "")) != gen:
                    return
                last, read = int(item.get("last_seq", last)), True
        except Exception:
            # Do not block the connection for the lease's length; the caller's retry resends from last_seq.
            self.connections.abandon(connection_id, sender)
            raise

    def _send_batch(self, connection_id: str, run_id: str, batch: dict[str, Any]) -> bool:
        return all(self.send(connection_id, frame) for frame in log_frames(run_id, batch))

    def send(self, connection_id: str, data: bytes) -> bool:
        """Post one frame; a gone connection is deleted and False returned."""
        try:
            self.poster.post(connection_id, data)
        except Gone:
            logger.info("connection %s is gone; removing it", connection_id)
            self.connections.remove(connection_id)
            return False
        return True
