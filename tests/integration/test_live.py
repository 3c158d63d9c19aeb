"""The live view's core on moto: replay then live, exactly once and in order, whatever the interleaving."""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from flowdeck.errors import RunNotFound
from flowdeck.live.frames import MAX_FRAME_BYTES, log_frames, status_message
from flowdeck.live.poster import Gone
from flowdeck.live.service import LiveService
from flowdeck.stores.connections import Connections
from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_connections_table_kwargs, create_logs_table_kwargs

LOGS = "flowdeck-logs-test"
CONNECTIONS = "flowdeck-connections-test"
RUN = "20261121-120000-abcdef01"


class LockedClient:
    """moto's DynamoDB client with each call atomic, as DynamoDB's conditional writes are."""

    def __init__(self, client: Any) -> None:
        self._client = client
        self._lock = threading.Lock()

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return method(*args, **kwargs)

        return call


class Socket:
    """A recording PostToConnection: frames by connection; ids in `gone` answer 410."""

    def __init__(self) -> None:
        self.frames: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.gone: set[str] = set()
        self.on_post: Callable[[str, dict[str, Any]], None] | None = None
        self.lock = threading.Lock()

    def post(self, connection_id: str, data: bytes) -> None:
        if connection_id in self.gone:
            raise Gone(connection_id)
        assert len(data) <= 32 * 1024
        message = json.loads(data)
        with self.lock:
            self.frames[connection_id].append(message)
        if self.on_post is not None:
            self.on_post(connection_id, message)

    def seqs(self, connection_id: str) -> list[int]:
        return [m["seq"] for m in self.frames[connection_id] if m["type"] == "log"]


class FakeRuns:
    def get_run(self, run_id: str) -> dict[str, Any]:
        if run_id != RUN:
            raise RunNotFound(run_id)
        return {
            "run_id": RUN,
            "workflow": "hello",
            "status": "running",
            "started_at": "2026-11-21T12:00:00Z",
            "ended_at": None,
            "error": None,
            "steps": [
                {"id": "greet", "status": "running", "attempt": 1, "started_at": "2026-11-21T12:00:01Z"}
            ],
        }


@pytest.fixture
def aws() -> Iterator[Any]:
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_logs_table_kwargs(LOGS))
        ddb.create_table(**create_connections_table_kwargs(CONNECTIONS))
        yield LockedClient(ddb)


@pytest.fixture
def socket() -> Socket:
    return Socket()


@pytest.fixture
def logs(aws: Any) -> LogStore:
    return LogStore(LOGS, client=aws)


@pytest.fixture
def live(aws: Any, logs: LogStore, socket: Socket) -> LiveService:
    return LiveService(Connections(CONNECTIONS, client=aws), logs, FakeRuns(), socket)


def append(logs: LogStore, count: int, step: str = "greet") -> list[dict[str, Any]]:
    """Store `count` batches of one line each; the stored batches, as the stream would carry them."""
    batches = []
    for _ in range(count):
        n = logs.last_seq(RUN) + 1
        seq = logs.append(RUN, step, 1, [{"t": time.time(), "stream": "stdout", "text": f"line {n}"}], 2**31)
        batches.append({"seq": seq, "step": step, "lines": [{"stream": "stdout", "text": f"line {seq}"}]})
    return batches


def subscribe(live: LiveService, connection_id: str, since_seq: int = 0) -> None:
    live.connect(connection_id, "someone")
    live.subscribe(connection_id, json.dumps({"action": "subscribe", "run_id": RUN, "since_seq": since_seq}))


def test_subscribe_sends_snapshot_then_replays_stored_batches(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    append(logs, 5)
    subscribe(live, "c1")
    kinds = [m["type"] for m in socket.frames["c1"]]
    assert kinds == ["run", "step", "log", "log", "log", "log", "log"]
    assert (
        socket.frames["c1"][1] | {"step": "greet", "status": "running", "attempt": 1}
        == socket.frames["c1"][1]
    )
    assert socket.seqs("c1") == [1, 2, 3, 4, 5]


def test_fanout_before_subscribe_reaches_no_one_and_replay_covers_it(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    live.on_log_batches(RUN, append(logs, 3))
    subscribe(live, "c1")
    live.on_log_batches(RUN, append(logs, 2))
    assert socket.seqs("c1") == [1, 2, 3, 4, 5]


def test_duplicate_and_stale_stream_records_send_nothing_twice(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    subscribe(live, "c1")
    batches = append(logs, 4)
    live.on_log_batches(RUN, batches)
    live.on_log_batches(RUN, batches[1:3])  # Lambda retried a batch of records
    live.on_log_batches(RUN, batches[:1])
    assert socket.seqs("c1") == [1, 2, 3, 4]


def test_fanout_during_replay_is_delivered_once_in_order(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    append(logs, 5)
    fired = []

    def during_replay(connection_id: str, message: dict[str, Any]) -> None:
        # While the replay holds the lease, new batches are stored and their fan-out runs.
        if message.get("seq") == 2 and not fired:
            fired.append(True)
            live.on_log_batches(RUN, append(logs, 3))

    socket.on_post = during_replay
    subscribe(live, "c1")
    assert socket.seqs("c1") == [1, 2, 3, 4, 5, 6, 7, 8]


def test_fanout_out_of_order_records_fill_the_gap_from_the_store(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    subscribe(live, "c1")
    batches = append(logs, 3)
    live.on_log_batches(RUN, batches[2:])  # seq 3's record first: 1 and 2 are read from the table
    live.on_log_batches(RUN, batches[:2])
    assert socket.seqs("c1") == [1, 2, 3]


def test_reconnect_with_since_seq_mid_run_resumes_without_gap_or_duplicate(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    subscribe(live, "first")
    live.on_log_batches(RUN, append(logs, 4))
    seen = socket.seqs("first")
    live.disconnect("first")  # API Gateway cut the connection
    live.on_log_batches(RUN, append(logs, 3))  # lines printed while nobody watched
    subscribe(live, "second", since_seq=seen[-1])
    live.on_log_batches(RUN, append(logs, 2))
    assert seen == [1, 2, 3, 4]
    assert socket.seqs("second") == [5, 6, 7, 8, 9]


def test_concurrent_senders_deliver_every_seq_once_in_order(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    # Given a writer storing batches and four fan-out workers handling their records in any order,
    # while viewers subscribe early, mid-way and late.
    total = 60
    records: list[dict[str, Any]] = []
    done = threading.Event()
    cond = threading.Condition()

    def writer() -> None:
        for _ in range(total):
            batch = append(logs, 1)
            with cond:
                records.extend(batch)
                cond.notify_all()
        done.set()

    def fanout(worker: int) -> None:
        index = worker
        while True:
            with cond:
                while index >= len(records) and not done.is_set():
                    cond.wait(0.05)
                if index >= len(records):
                    return
                batch = records[index]
            live.on_log_batches(RUN, [batch])
            index += 4

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=fanout, args=(i,)) for i in range(4)
    ]
    subscribe(live, "early")
    for thread in threads:
        thread.start()
    while len(records) < total // 2:
        time.sleep(0.01)
    subscribe(live, "middle")
    for thread in threads:
        thread.join()
    subscribe(live, "late")
    # Then each viewer has every seq exactly once, in order.
    for viewer in ("early", "middle", "late"):
        assert socket.seqs(viewer) == list(range(1, total + 1)), viewer


def test_gone_connection_is_deleted(live: LiveService, logs: LogStore, socket: Socket, aws: Any) -> None:
    subscribe(live, "c1")
    socket.gone.add("c1")
    live.on_log_batches(RUN, append(logs, 1))
    assert Connections(CONNECTIONS, client=aws).get("c1") is None


def test_bad_subscribe_gets_an_error_frame(live: LiveService, socket: Socket) -> None:
    live.connect("c1", "someone")
    live.subscribe("c1", "{not json")
    live.subscribe("c1", json.dumps({"action": "subscribe", "run_id": "", "since_seq": -1}))
    errors = socket.frames["c1"]
    assert [m["type"] for m in errors] == ["error", "error"]
    assert {m["error"] for m in errors} == {"BadRequest"}
    assert "since_seq" in errors[1]["message"]


def test_subscribe_to_an_unknown_run_waits_for_it(live: LiveService, socket: Socket) -> None:
    live.connect("c1", "someone")
    live.subscribe("c1", json.dumps({"action": "subscribe", "run_id": "not-yet"}))
    assert socket.frames["c1"] == [{"type": "run", "run_id": "not-yet", "status": None}]


def test_large_batch_is_split_into_parts_under_32_kb() -> None:
    lines = [{"t": 1.0, "stream": "stdout", "text": "x" * 1000 + str(i)} for i in range(100)]
    frames = log_frames(RUN, {"seq": 7, "step": "build", "lines": lines})
    messages = [json.loads(f) for f in frames]
    assert len(frames) > 1
    assert all(len(f) <= MAX_FRAME_BYTES for f in frames)
    assert {m["seq"] for m in messages} == {7}
    assert [m["part"] for m in messages] == list(range(1, len(frames) + 1))
    assert {m["parts"] for m in messages} == {len(frames)}
    assert [line for m in messages for line in m["lines"]] == lines


def test_small_batch_is_one_frame_without_parts() -> None:
    (frame,) = log_frames(
        RUN, {"seq": 1, "step": "s", "lines": [{"t": 1.0, "stream": "stderr", "text": "hi"}]}
    )
    assert json.loads(frame) == {
        "type": "log",
        "run_id": RUN,
        "step": "s",
        "seq": 1,
        "lines": [{"t": 1.0, "stream": "stderr", "text": "hi"}],
    }


def test_huge_line_is_cut_to_fit_a_frame() -> None:
    frames = log_frames(
        RUN, {"seq": 1, "step": "s", "lines": [{"t": 1.0, "stream": "stdout", "text": "y" * 100_000}]}
    )
    assert len(frames) == 1 and len(frames[0]) <= MAX_FRAME_BYTES
    assert json.loads(frames[0])["lines"][0]["truncated"] is True


def test_status_messages_from_runs_table_items() -> None:
    run = status_message(
        {"pk": RUN, "sk": "RUN"},
        {
            "pk": RUN,
            "sk": "RUN",
            "status": "failed",
            "started_at": "a",
            "ended_at": "b",
            "error": "StepFailed",
            # As a stream image gives it: the run's total is a number in DynamoDB.
            "cost_usd": 0.0125,
        },
    )
    step = status_message(
        {"pk": RUN, "sk": "STEP#build"},
        {
            "status": "succeeded",
            "attempt": 2,
            "started_at": "a",
            "ended_at": "b",
            "summary": "ok",
            "cost_usd": "0.000003",
        },
    )
    assert run == {
        "type": "run",
        "run_id": RUN,
        "workflow": None,
        "status": "failed",
        "started_at": "a",
        "ended_at": "b",
        "error": "StepFailed",
        # Money is a decimal string in frames too, as in every answer.
        "cost_usd": "0.0125",
    }
    assert step == {
        "type": "step",
        "run_id": RUN,
        "step": "build",
        "status": "succeeded",
        "attempt": 2,
        "started_at": "a",
        "ended_at": "b",
        "error": None,
        "summary": "ok",
        "cost_usd": "0.000003",
    }
    assert status_message({"pk": RUN, "sk": "OUTPUTS"}, {"outputs#build": {}}) is None


def test_status_change_reaches_every_subscriber(live: LiveService, socket: Socket) -> None:
    subscribe(live, "a")
    subscribe(live, "b")
    live.on_status({"type": "run", "run_id": RUN, "status": "succeeded"})
    for viewer in ("a", "b"):
        assert socket.frames[viewer][-1] == {"type": "run", "run_id": RUN, "status": "succeeded"}


def test_final_status_catches_up_a_subscriber_the_index_missed(
    live: LiveService, logs: LogStore, socket: Socket
) -> None:
    subscribe(live, "c1")
    append(logs, 2)  # stored, but their fan-out did not see c1 (the by-run index lagged)
    live.on_status({"type": "step", "run_id": RUN, "step": "greet", "status": "succeeded"})
    assert socket.seqs("c1") == [1, 2]
