"""LogStore on moto: seq allocation under concurrent writers, replay, and search across Query pages."""

from __future__ import annotations

import json
import threading
import zlib
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_logs_table_kwargs

LOGS_TABLE = "flowdeck-logs-test"


@pytest.fixture
def logs_ddb() -> Iterator[Any]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_logs_table_kwargs(LOGS_TABLE))
        yield ddb


def lines(stream: str, *texts: str) -> list[dict[str, Any]]:
    return [{"t": 1763750000.123, "stream": stream, "text": text} for text in texts]


@pytest.mark.usefixtures("atomic_item_writes")  # moto alone lets two writers take one seq under load
def test_concurrent_writers_get_gap_free_increasing_seqs_and_every_line_once(logs_ddb):
    # Given two workers' stores (separate caches) writing the same run at once
    stores = [LogStore(LOGS_TABLE, logs_ddb), LogStore(LOGS_TABLE, logs_ddb)]
    used: dict[str, list[int]] = {"a": [], "b": []}

    def write(store: LogStore, step: str) -> None:
        for i in range(40):
            used[step].append(store.append("run-1", step, 1, lines("stdout", f"{step} {i}"), 0))

    threads = [
        threading.Thread(target=write, args=(store, step)) for store, step in zip(stores, "ab", strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # Then seqs are 1..80 without gaps, each writer's own seqs increase, and every line is there once
    batches = stores[0].batches_after("run-1", 0)
    assert [b["seq"] for b in batches] == list(range(1, 81))
    assert all(used[s] == sorted(used[s]) for s in "ab")
    for step in "ab":
        assert [b["lines"][0]["text"] for b in batches if b["step"] == step] == [
            f"{step} {i}" for i in range(40)
        ]


def test_batches_after_replays_from_a_seq_with_the_item_shape(logs_ddb):
    store = LogStore(LOGS_TABLE, logs_ddb)
    for i in range(5):
        store.append("run-1", "build", 2, [{"t": 1.5, "stream": "stderr", "text": f"e{i}", "cont": True}], 99)
    store.append("run-2", "other", 1, lines("stdout", "elsewhere"), 99)
    batches = store.batches_after("run-1", 2)
    assert [b["seq"] for b in batches] == [3, 4, 5]
    assert batches[0] == {
        "seq": 3,
        "step": "build",
        "attempt": 2,
        "lines": [{"t": 1.5, "stream": "stderr", "text": "e2", "cont": True}],
    }
    assert len(store.batches_after("run-1", 0, limit=2)) == 2
    item = logs_ddb.get_item(TableName=LOGS_TABLE, Key={"run_id": {"S": "run-1"}, "seq": {"N": "1"}})["Item"]
    assert item["expires_at"] == {"N": "99"}


def test_a_writer_with_a_stale_cache_continues_after_the_real_last_seq(logs_ddb):
    first, second = LogStore(LOGS_TABLE, logs_ddb), LogStore(LOGS_TABLE, logs_ddb)
    assert first.append("run-1", "a", 1, lines("stdout", "1"), 0) == 1
    assert second.append("run-1", "b", 1, lines("stdout", "2"), 0) == 2
    assert second.append("run-1", "b", 1, lines("stdout", "3"), 0) == 3
    # first still believes 1 is the last: its put at 2 conflicts, it reads the max and takes 4
    assert first.append("run-1", "a", 1, lines("stdout", "4"), 0) == 4


def test_search_filters_stream_step_and_text_across_many_query_pages(logs_ddb):
    store = LogStore(LOGS_TABLE, logs_ddb)
    store.page_size = 7  # many pages for 60 batches
    for i in range(60):
        step = "build" if i % 2 == 0 else "test"
        store.append(
            "run-1", step, 1, lines("stdout", f"{step} out {i}") + lines("stderr", f"{step} ERROR {i}"), 0
        )
    everything = list(store.search("run-1"))
    assert len(everything) == 120
    assert [line["seq"] for line in everything] == sorted(line["seq"] for line in everything)
    errors = list(store.search("run-1", stream="stderr"))
    assert [line["text"] for line in errors] == [
        f"{'build' if i % 2 == 0 else 'test'} ERROR {i}" for i in range(60)
    ]
    test_out = list(store.search("run-1", step="test", stream="stdout"))
    assert [line["text"] for line in test_out] == [f"test out {i}" for i in range(1, 60, 2)]
    # the only match is in the last batch: search reads the whole stored log, not one page
    found = list(store.search("run-1", q="error 59"))
    assert [(line["seq"], line["step"], line["stream"], line["text"]) for line in found] == [
        (60, "test", "stderr", "test ERROR 59")
    ]
    assert list(store.search("run-1", q="out", since_seq=58)) == [
        {"seq": 59, "step": "build", "t": 1763750000.123, "stream": "stdout", "text": "build out 58"},
        {"seq": 60, "step": "test", "t": 1763750000.123, "stream": "stdout", "text": "test out 59"},
    ]


def test_a_batch_is_stored_as_compressed_json_and_read_back_exactly(logs_ddb):
    store = LogStore(LOGS_TABLE, logs_ddb)
    batch = [
        {"t": 1763750000.123, "stream": "stdout", "text": 'ünïcode \x1b[1mbold\x1b[0m "quoted" \\ back'},
        {"t": 1763750000.5, "stream": "stderr", "text": "x" * 3000, "cont": True},
    ]
    store.append("run-1", "build", 1, batch, 0)
    item = logs_ddb.get_item(TableName=LOGS_TABLE, Key={"run_id": {"S": "run-1"}, "seq": {"N": "1"}})["Item"]
    stored = item["lines"]["B"]
    assert json.loads(zlib.decompress(stored)) == batch
    assert len(stored) < len(json.dumps(batch)) / 10
    assert store.batches_after("run-1", 0)[0]["lines"] == batch


def test_batches_of_the_earlier_layouts_are_still_read_in_seq_order_with_new_ones(logs_ddb):
    # Given a run whose first batches were stored as typed maps, then as JSON text, then compressed
    def put(seq: int, lines_value: dict[str, Any]) -> None:
        item = {
            "run_id": {"S": "run-1"},
            "seq": {"N": str(seq)},
            "step": {"S": "build"},
            "lines": lines_value,
        }
        logs_ddb.put_item(TableName=LOGS_TABLE, Item=item | {"attempt": {"N": "1"}})

    typed = {
        "M": {
            "t": {"N": "1.5"},
            "stream": {"S": "stderr"},
            "text": {"S": "old error"},
            "cont": {"BOOL": True},
        }
    }
    put(1, {"L": [typed]})
    put(2, {"S": json.dumps([{"t": 2.5, "stream": "stdout", "text": "text error"}])})
    store = LogStore(LOGS_TABLE, logs_ddb)
    store.append("run-1", "build", 1, lines("stdout", "new error"), 0)
    # Then every reader sees all three, in order
    assert [b["lines"] for b in store.batches_after("run-1", 0)] == [
        [{"t": 1.5, "stream": "stderr", "text": "old error", "cont": True}],
        [{"t": 2.5, "stream": "stdout", "text": "text error"}],
        [{"t": 1763750000.123, "stream": "stdout", "text": "new error"}],
    ]
    assert [(line["seq"], line["text"]) for line in store.search("run-1", q="ERROR")] == [
        (1, "old error"),
        (2, "text error"),
        (3, "new error"),
    ]


def query_pages(ddb: Any) -> list[tuple[int, int]]:
    """(Limit asked, items answered) of each Query the client sends from now on."""
    pages: list[tuple[int, int]] = []
    asked: list[int] = []
    ddb.meta.events.register(
        "before-parameter-build.dynamodb.Query", lambda params, **_: asked.append(params["Limit"])
    )
    ddb.meta.events.register(
        "after-call.dynamodb.Query", lambda parsed, **_: pages.append((asked.pop(), parsed["Count"]))
    )
    return pages


def test_a_search_over_megabytes_of_output_reads_few_pages_that_1_mb_never_cuts(logs_ddb):
    # Given 200 full batches (~6 MB of line JSON: stored as text, 1 MB would end a page every ~33)
    store = LogStore(LOGS_TABLE, logs_ddb)
    for b in range(200):
        texts = [f"{b * 300 + i:07d} the quick brown fox jumps over the lazy dog" for i in range(300)]
        store.append("run-1", "flood", 1, lines("stdout", *texts), 0)
    pages = query_pages(logs_ddb)
    # When the whole log is searched
    found = [line["text"] for line in store.search("run-1", q="99 THE")]
    # Then every match is found, from four growing pages, each as long as it asked
    assert found == [f"{n:07d} the quick brown fox jumps over the lazy dog" for n in range(99, 60_000, 100)]
    assert pages == [(8, 8), (32, 32), (128, 128), (500, 32)]


def test_a_reader_that_stops_early_reads_one_small_page(logs_ddb):
    store = LogStore(LOGS_TABLE, logs_ddb)
    for b in range(100):
        store.append("run-1", "build", 1, lines("stdout", f"line {b}"), 0)
    pages = query_pages(logs_ddb)
    batches = store.iter_batches("run-1")
    assert [next(batches)["lines"][0]["text"] for _ in range(2)] == ["line 0", "line 1"]
    assert pages == [(8, 8)]
    assert len(store.batches_after("run-1", 50, limit=3)) == 3
    assert pages == [(8, 8), (3, 3)]
