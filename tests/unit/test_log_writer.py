"""Log lines from raw pipe bytes: splitting, escaping, batch sizes, order, flushing (no network)."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowdeck.runner.logs import (
    MAX_BATCH_BYTES,
    MAX_LINE_BYTES,
    MAX_PARTIAL_BYTES,
    SEND_ATTEMPTS,
    LineSplitter,
    LogWriter,
    json_len,
    split_long,
)
from flowdeck.runner.process import tail_lines


class FakeStore:
    """Records appended batches; seq as the real store assigns it."""

    def __init__(self, delay: float = 0.0) -> None:
        self.batches: list[dict[str, Any]] = []
        self.delay = delay
        self.lock = threading.Lock()

    def append(
        self, run_id: str, step: str, attempt: int, lines: list[dict[str, Any]], expires_at: int
    ) -> int:
        time.sleep(self.delay)
        with self.lock:
            seq = len(self.batches) + 1
            self.batches.append(
                {
                    "seq": seq,
                    "run_id": run_id,
                    "step": step,
                    "attempt": attempt,
                    "lines": lines,
                    "expires_at": expires_at,
                }
            )
        return seq

    def lines(self) -> list[dict[str, Any]]:
        return [line for batch in self.batches for line in batch["lines"]]


def writer(store: FakeStore, **kwargs: Any) -> LogWriter:
    return LogWriter(store, "run-1", "build", attempt=2, retention_hours=48, **kwargs)  # type: ignore[arg-type]


def frame(batch: dict[str, Any]) -> str:
    """The WebSocket message of SPEC §4 that carries one batch."""
    return json.dumps(
        {
            "type": "log",
            "run_id": batch["run_id"],
            "step": batch["step"],
            "seq": batch["seq"],
            "lines": batch["lines"],
        }
    )


def test_splitter_keeps_lines_whole_across_reads_and_strips_line_endings():
    splitter = LineSplitter()
    out = splitter.feed(b"one\r\ntw") + splitter.feed(b"o\nthr") + splitter.feed(b"ee\n") + splitter.finish()
    assert out == [("one", False), ("two", False), ("three", False)]


def test_splitter_emits_a_last_line_without_newline_at_the_end():
    splitter = LineSplitter()
    assert splitter.feed(b"a\nno newline") == [("a", False)]
    assert splitter.finish() == [("no newline", False)]


def test_invalid_utf8_is_escaped_not_fatal():
    out = LineSplitter().feed(b"ok \xff\xfe\x00 binary\n\xe2\x82\xac euro\n")
    assert out == [("ok \\xff\\xfe\x00 binary", False), ("\u20ac euro", False)]


def test_a_multibyte_character_split_between_reads_survives():
    euro = "\u20ac".encode()
    splitter = LineSplitter()
    assert splitter.feed(b"price " + euro[:1]) == []
    assert splitter.feed(euro[1:] + b"\n") == [("price \u20ac", False)]


def test_long_line_is_split_into_continuation_parts_that_rejoin():
    text = "x" * (3 * MAX_LINE_BYTES + 100)
    parts = split_long(text)
    assert len(parts) == 4
    assert [cont for _, cont in parts] == [False, True, True, True]
    assert "".join(part for part, _ in parts) == text
    assert all(json_len(part) <= MAX_LINE_BYTES for part, _ in parts)


def test_escape_heavy_line_parts_fit_by_their_json_size():
    text = "\x01" * 5000 + "\U0001f600" * 3000  # 6 and 12 bytes each as JSON
    parts = split_long(text)
    assert "".join(part for part, _ in parts) == text
    assert all(json_len(part) <= MAX_LINE_BYTES for part, _ in parts)


def test_a_line_with_no_newline_is_cut_so_memory_stays_bounded():
    splitter = LineSplitter()
    out: list[tuple[str, bool]] = []
    for _ in range(10):
        out += splitter.feed(b"y" * 32 * 1024)
    out += splitter.feed(b"\n") + splitter.finish()
    assert "".join(text for text, _ in out) == "y" * 320 * 1024
    assert out[0][1] is False
    assert all(cont for _, cont in out[1:])
    assert len(splitter._partial) <= MAX_PARTIAL_BYTES


def test_writer_stores_every_line_in_order_in_batches_under_the_frame_limit():
    store = FakeStore()
    log = writer(store)
    expected = []
    for i in range(0, 20_000, 500):
        chunk = "".join(f"line {n} {'z' * (n % 37)}\n" for n in range(i, i + 500))
        expected += chunk.splitlines()
        log.feed("stdout", chunk.encode())
    log.feed("stdout", b"w" * 100_000 + b"\n")
    log.close()
    lines = store.lines()
    assert [line["text"] for line in lines[:20_000]] == expected
    assert "".join(line["text"] for line in lines[20_000:]) == "w" * 100_000
    assert [b["seq"] for b in store.batches] == list(range(1, len(store.batches) + 1))
    assert len(store.batches) > 10
    assert all(len(frame(batch)) < MAX_BATCH_BYTES for batch in store.batches)
    assert log.lines_stored == len(lines)


def test_batches_carry_step_attempt_stream_timestamps_and_retention():
    store = FakeStore()
    log = writer(store)
    before = time.time()
    log.feed("stdout", b"out\n")
    log.feed("stderr", b"err\n")
    log("stdout", "whole line")
    log.close()
    assert [(line["stream"], line["text"]) for line in store.lines()] == [
        ("stdout", "out"),
        ("stderr", "err"),
        ("stdout", "whole line"),
    ]
    batch = store.batches[0]
    assert (batch["step"], batch["attempt"]) == ("build", 2)
    assert all(before - 0.01 <= line["t"] <= time.time() + 0.01 for line in store.lines())
    assert before + 48 * 3600 - 1 <= batch["expires_at"] <= time.time() + 48 * 3600 + 1


def test_writer_flushes_on_its_timer_without_close():
    store = FakeStore()
    log = writer(store, flush_interval=0.05)
    log.feed("stdout", b"early\n")
    deadline = time.monotonic() + 2
    while not store.batches and time.monotonic() < deadline:
        time.sleep(0.01)
    assert store.lines()[0]["text"] == "early"
    log.close()


def test_feeding_never_waits_for_a_slow_store():
    store = FakeStore(delay=0.02)
    log = writer(store)
    started = time.monotonic()
    for i in range(400):
        log.feed("stdout", f"line {i}\n".encode() * 50)
    fed = time.monotonic() - started
    log.close()
    assert fed < 0.2  # while storing takes ~1 s
    assert len(store.lines()) == 20_000


def test_stream_order_is_kept_within_each_stream():
    store = FakeStore()
    log = writer(store)

    def pump(stream: str) -> None:
        for i in range(0, 5_000, 100):
            log.feed(stream, "".join(f"{stream} {n}\n" for n in range(i, i + 100)).encode())

    threads = [threading.Thread(target=pump, args=(s,)) for s in ("stdout", "stderr")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close()
    for stream in ("stdout", "stderr"):
        texts = [line["text"] for line in store.lines() if line["stream"] == stream]
        assert texts == [f"{stream} {n}" for n in range(5_000)]


def test_tail_lines_drop_a_cut_first_line_and_the_trailing_newline():
    assert tail_lines(b"partial\nlast one\r\n", cut=True) == ["last one"]
    assert tail_lines(b"a\nb", cut=False) == ["a", "b"]


class FlakyStore(FakeStore):
    """Fails the first `failures` appends like an unreachable table would."""

    def __init__(self, failures: int) -> None:
        super().__init__()
        self.failures = failures

    def append(self, *args: Any) -> int:
        if self.failures:
            self.failures -= 1
            raise ClientError({"Error": {"Code": "ProvisionedThroughputExceededException"}}, "PutItem")
        return super().append(*args)


def test_a_failed_put_is_retried_and_nothing_is_lost(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(time, "sleep", lambda _: None)
    store = FlakyStore(failures=2)
    log = writer(store)
    log.feed("stdout", b"kept\n")
    log.close()
    assert [line["text"] for line in store.lines()] == ["kept"]
    assert log.lines_dropped == 0


def test_an_unreachable_table_drops_batches_without_raising_or_hanging(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(time, "sleep", lambda _: None)
    store = FlakyStore(failures=10_000)
    log = writer(store)
    for i in range(50):
        log.feed("stdout", f"{'x' * 1000} {i}\n".encode() * 40)
    log.close()
    assert log.lines_dropped == 2000
    # Retried in full once, then one try per batch: the step's end is not held for minutes
    assert 10_000 - store.failures < SEND_ATTEMPTS + 100
