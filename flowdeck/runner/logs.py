"""A step's output to the logs table: bytes in from the pumps, timestamped lines out in ~30 KB batches.

The process's pump threads hand each pipe read (up to 1 MiB, many lines) to `LogWriter.feed`, which
only appends it to a queue: the pumps never wait on the log path, so a step that prints fast is never
throttled by it. One background thread splits the bytes into lines, decodes them (invalid UTF-8 shown
as `\\xNN` escapes), cuts long lines into parts marked `cont`, and stores, in order, each batch that
reaches ~30 KB at once and what it holds otherwise at most every 100 ms (at once after a quiet spell).
`close()` stores the rest and waits: the worker calls it before recording the step's end, so a
finished step's log is complete.

The queue is unbounded on purpose: bounding it would mean blocking the pumps (throttling the step,
which the issue forbids) or dropping lines (also forbidden). What it holds is output not yet stored,
i.e. how far DynamoDB trails the step; at ~30 KB per PutItem that stays small for any step whose
output a person could read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.messages import StepMessage
from flowdeck.stores.logs import CONT_OVERHEAD, LINE_OVERHEAD, LogStore, json_len

log = logging.getLogger("flowdeck.logs")

# A line whose JSON text is longer than this is stored as several lines, the later ones `cont`.
MAX_LINE_BYTES = 8 * 1024
# Bytes held while waiting for a newline: past this the line is cut, so memory stays bounded.
MAX_PARTIAL_BYTES = 64 * 1024
# A batch as one WebSocket message (SPEC §4: 32 KB) with room for the envelope.
MAX_BATCH_BYTES = 30_000
# {"type": "log", "run_id": , "step": , "seq": 123456789, "lines": []} plus the two names.
BATCH_OVERHEAD = 96
FLUSH_INTERVAL = 0.1
SEND_ATTEMPTS = 6
# The flusher thread's niceness (Linux schedules threads one by one): storing output yields the CPU
# to the step that prints it.
FLUSHER_NICENESS = 10

Line = tuple[str, bool]
"""(text, cont): one stored line; cont marks the continuation parts of a line that was cut."""


def _utf8_cut(data: bytes, limit: int) -> int:
    """An index <= limit that does not split a UTF-8 sequence (when there is one to keep whole)."""
    for cut in range(limit, max(limit - 4, 0), -1):
        if (data[cut] & 0xC0) != 0x80:  # not a continuation byte: a character starts here
            return cut
    return limit


def split_long(text: str, cont: bool = False, limit: int = MAX_LINE_BYTES) -> list[Line]:
    """`text` as parts whose JSON fits `limit`; every part after the first is a continuation."""
    if len(text) <= limit // 6 or json_len(text) <= limit:  # 6: the longest escape of one char
        return [(text, cont)]
    parts: list[Line] = []
    start = 0
    while start < len(text):
        n = limit
        piece = text[start : start + n]
        while (size := json_len(piece)) > limit:
            n = max(1, min(n - 1, n * limit // size))
            piece = text[start : start + n]
        parts.append((piece, cont or bool(parts)))
        start += n
    return parts


class LineSplitter:
    """Bytes of one stream in, lines out: decoded, escaped where not UTF-8, long ones cut."""

    def __init__(self) -> None:
        self._partial = b""
        self._cont = False  # the next line continues one that was cut for having no newline yet

    def feed(self, chunk: bytes) -> list[Line]:
        data = self._partial + chunk if self._partial else chunk
        end = data.rfind(b"\n")
        out: list[Line] = []
        if end >= 0:
            self._partial = data[end + 1 :]
            # b"\n" never occurs inside a UTF-8 sequence, so decoding the block at once equals per line.
            texts = data[:end].decode("utf-8", errors="backslashreplace").split("\n")
            if b"\r" in data:
                texts = [t.removesuffix("\r") for t in texts]
            if self._cont:
                out.extend(split_long(texts[0], cont=True))
                texts = texts[1:]
                self._cont = False
            if any(len(t) > MAX_LINE_BYTES // 6 for t in texts):
                for t in texts:
                    out.extend(split_long(t))
            else:
                out.extend((t, False) for t in texts)
        else:
            self._partial = data
        while len(self._partial) > MAX_PARTIAL_BYTES:
            cut = _utf8_cut(self._partial, MAX_PARTIAL_BYTES)
            piece = self._partial[:cut].decode("utf-8", errors="backslashreplace")
            out.extend(split_long(piece, cont=self._cont))
            self._partial = self._partial[cut:]
            self._cont = True
        return out

    def finish(self) -> list[Line]:
        """The last line when the stream did not end with a newline."""
        if not self._partial:
            return []
        text = self._partial.decode("utf-8", errors="backslashreplace").removesuffix("\r")
        self._partial = b""
        return split_long(text, cont=self._cont)


@dataclass
class _Batch:
    lines: list[dict[str, Any]] = field(default_factory=list)
    size: int = 0


class LogWriter:
    """Stores one step attempt's output: feed it from the pumps (or call it with whole lines), then close."""

    def __init__(
        self,
        store: LogStore,
        run_id: str,
        step: str,
        attempt: int = 1,
        retention_hours: int = 24,
        flush_interval: float = FLUSH_INTERVAL,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.store = store
        self.run_id = run_id
        self.step = step
        self.attempt = attempt
        self.retention_seconds = retention_hours * 3600
        self.flush_interval = flush_interval
        self.max_batch_bytes = max_batch_bytes
        self.lines_stored = 0
        self.lines_dropped = 0
        self._queue: deque[tuple[float, str, bytes | str]] = deque()
        self._splitters = {"stdout": LineSplitter(), "stderr": LineSplitter()}
        self._envelope = BATCH_OVERHEAD + json_len(run_id) + json_len(step)
        self._last_send = 0.0  # monotonic; long ago, so the first line goes out at once
        self._wake = threading.Event()
        self._closing = False
        self._closed = False
        self._failing = False
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"logs-{step}")
        self._thread.start()

    @classmethod
    def for_step(cls, store: LogStore, message: StepMessage) -> LogWriter:
        return cls(store, message.run_id, message.step, message.attempt, message.retention_hours)

    # -- the pumps' side: append and return -----------------------------------------------------
    def feed(self, stream: str, chunk: bytes) -> None:
        """Raw bytes of `stream`, as read from the pipe."""
        self._enqueue(stream, chunk)

    def __call__(self, stream: str, text: str) -> None:
        """One whole line (a LineSink), e.g. what a notify step reports."""
        self._enqueue(stream, text)

    def _enqueue(self, stream: str, data: bytes | str) -> None:
        if self._closed:
            # Only a background process that outlived its step still holds the pipe.
            self.lines_dropped += data.count(b"\n") if isinstance(data, bytes) else 1
            return
        self._queue.append((time.time(), stream, data))
        self._wake.set()  # once per pipe read, not per line

    def close(self, timeout: float | None = None) -> None:
        """Store everything fed so far, then stop."""
        self._closing = True
        self._wake.set()
        self._thread.join(timeout)
        self._closed = True

    # -- the flusher ----------------------------------------------------------------------------
    def _run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):  # not Linux: same priority as the step
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), FLUSHER_NICENESS)
        batch = _Batch(size=self._envelope)
        while True:
            # A partial batch goes out at most every flush_interval: at once after a quiet spell (live
            # latency), 10 puts a second while the step keeps printing; full batches go at once.
            wait = None
            if batch.lines:
                wait = max(0.0, self._last_send + self.flush_interval - time.monotonic())
            self._wake.wait(wait)
            self._wake.clear()
            closing = self._closing  # read before draining: whatever was fed before close() is drained
            try:
                batch = self._drain(batch)
                if closing:
                    for stream, splitter in self._splitters.items():
                        batch = self._add(batch, time.time(), stream, splitter.finish())
                due = time.monotonic() >= self._last_send + self.flush_interval
                if batch.lines and (closing or due):
                    self._send(batch)
                    batch = _Batch(size=self._envelope)
            except Exception:  # the log path must never take the step or the worker down
                log.exception("log writer for %s/%s failed", self.run_id, self.step)
                batch = _Batch(size=self._envelope)
            if closing:
                return

    def _drain(self, batch: _Batch) -> _Batch:
        queue = self._queue
        while queue:
            t, stream, data = queue.popleft()
            lines = self._splitters[stream].feed(data) if isinstance(data, bytes) else split_long(data)
            batch = self._add(batch, t, stream, lines)
        return batch

    def _add(self, batch: _Batch, t: float, stream: str, lines: list[Line]) -> _Batch:
        """Append lines to the open batch, storing it each time the next line would not fit."""
        stamp = round(t, 3)
        limit = self.max_batch_bytes
        for text, cont in lines:
            size = json_len(text) + (LINE_OVERHEAD + CONT_OVERHEAD if cont else LINE_OVERHEAD)
            if batch.lines and batch.size + size > limit:
                self._send(batch)
                batch = _Batch(size=self._envelope)
            line: dict[str, Any] = {"t": stamp, "stream": stream, "text": text}
            if cont:
                line["cont"] = True
            batch.lines.append(line)
            batch.size += size
        return batch

    def _send(self, batch: _Batch) -> None:
        """Store one batch, retrying with backoff; a batch that cannot be stored is counted, not raised."""
        self._last_send = time.monotonic()
        # Once a batch was dropped the table is likely out of reach: one try per batch until one
        # succeeds, so a large backlog cannot hold the step's end for minutes.
        attempts = 1 if self._failing else SEND_ATTEMPTS
        for attempt in range(attempts):
            try:
                self.store.append(
                    self.run_id,
                    self.step,
                    self.attempt,
                    batch.lines,
                    int(time.time()) + self.retention_seconds,
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("storing %d log lines failed (%s)", len(batch.lines), exc)
                if attempt + 1 < attempts:
                    time.sleep(min(0.2 * 2**attempt, 5.0))
                continue
            self.lines_stored += len(batch.lines)
            self._failing = False
            return
        self._failing = True
        self.lines_dropped += len(batch.lines)
        log.error("dropped %d log lines of %s/%s", len(batch.lines), self.run_id, self.step)
