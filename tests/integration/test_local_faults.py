"""Faults injected on purpose (flowdeck.local.faults), the cheap ones: each ends in a truthful record.

- a stream batch whose handler fails is retried as Lambda retries it (whole, or from the first failed
  record of a partial batch response), and given up only after its retries;
- DynamoDB throttling on the log path is retried by the SDK's standard retry mode: every line stored
  once, in order;
- S3 errors on the artifact path: retried, or the step reports the artifact it could not store and
  never claims it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import ThreadedMotoServer

from flowdeck import aws
from flowdeck.config import Settings
from flowdeck.local import faults
from flowdeck.local.faults import AwsFault, HandlerFault, faulty_handler
from flowdeck.local.stack import free_port
from flowdeck.local.streams import StreamPoller, StreamReader
from flowdeck.messages import StepMessage
from flowdeck.runner.artifacts import now, upload
from flowdeck.runner.logs import LogWriter
from flowdeck.stores.artifacts import ArtifactStore, s3_client
from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_logs_table_kwargs

LOGS_TABLE = "flowdeck-logs-faults"
BUCKET = "flowdeck-artifacts-faults"


def _until(done: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


# -- the emulator, in process -------------------------------------------------------------------
@pytest.fixture
def faulty_emulator(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[list[AwsFault]], Settings]]:
    """An in-process moto server; call it with the faults it should inject, get settings pointing at it."""
    servers = []

    def start(injected: list[AwsFault]) -> Settings:
        monkeypatch.setattr(
            DomainDispatcherApplication,
            "__call__",
            faults.inject(DomainDispatcherApplication.__call__, injected),
        )
        port = free_port()
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
        server.start()
        servers.append(server)
        return Settings(aws_endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "local")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "local")
    yield start
    for server in servers:
        host, port = server.get_host_and_port()
        httpx.post(f"http://{host}:{port}/moto-api/reset")  # moto's backends outlive the server
        server.stop()


# -- stream batches -------------------------------------------------------------------------------
@pytest.fixture
def logs_stream(faulty_emulator: Callable[[list[AwsFault]], Settings]) -> tuple[Any, Any]:
    """(dynamodb, dynamodbstreams) on a moto server with a logs table whose stream is on."""
    settings = faulty_emulator([])
    ddb = aws.client("dynamodb", settings)
    ddb.create_table(**create_logs_table_kwargs(LOGS_TABLE))
    return ddb, aws.client("dynamodbstreams", settings)


def _put_batches(ddb: Any, count: int) -> None:
    for seq in range(1, count + 1):
        ddb.put_item(
            TableName=LOGS_TABLE,
            Item={"run_id": {"S": "r1"}, "seq": {"N": str(seq)}, "lines": {"L": []}},
        )


def _seqs(event: dict[str, Any]) -> list[int]:
    return [int(r["dynamodb"]["Keys"]["seq"]["N"]) for r in event["Records"]]


def _poller(handler: Callable[..., Any], streams: tuple[Any, Any], retries: int = 3) -> StreamPoller:
    ddb, ddb_streams = streams
    poller = StreamPoller(handler, [LOGS_TABLE], ddb, ddb_streams, retry_attempts=retries)
    poller.start()
    return poller


def test_a_failed_stream_batch_is_retried_until_the_handler_takes_it(logs_stream: tuple[Any, Any]) -> None:
    taken: list[int] = []
    handler = faulty_handler(
        lambda event, context: taken.extend(_seqs(event)), "fanout", [HandlerFault(handler="fanout", times=2)]
    )
    poller = _poller(handler, logs_stream)
    try:
        _put_batches(logs_stream[0], 5)
        _until(lambda: len(taken) >= 5)
    finally:
        poller.stop()

    assert taken == [1, 2, 3, 4, 5]
    assert poller.given_up == 0


def test_a_partial_batch_failure_is_retried_from_its_first_failed_record(
    logs_stream: tuple[Any, Any],
) -> None:
    calls: list[list[int]] = []
    failed: list[int] = []

    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        calls.append(_seqs(event))
        third = [r for r in event["Records"] if r["dynamodb"]["Keys"]["seq"]["N"] == "3"]
        if third and not failed:  # record 3 fails once, as a reaction whose write was throttled
            failed.append(len(calls) - 1)
            return {"batchItemFailures": [{"itemIdentifier": third[0]["dynamodb"]["SequenceNumber"]}]}
        return {"batchItemFailures": []}

    poller = _poller(handler, logs_stream)
    try:
        _put_batches(logs_stream[0], 5)
        _until(lambda: bool(calls) and calls[-1][-1] == 5 and bool(failed) and len(calls) > failed[0] + 1)
    finally:
        poller.stop()

    (at,) = failed
    # The records before the failed one were taken; from it on, all are handed over again, in order.
    assert calls[at + 1][0] == 3
    taken = [*calls[:at], [seq for seq in calls[at] if seq < 3], *calls[at + 1 :]]
    assert [seq for call in taken for seq in call] == [1, 2, 3, 4, 5]
    assert poller.given_up == 0


class CountingStreams:
    """A dynamodbstreams client that counts the GetRecords answers that carried records."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.readings = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.client, name)

    def get_records(self, **kwargs: Any) -> dict[str, Any]:
        answer: dict[str, Any] = self.client.get_records(**kwargs)
        self.readings += bool(answer.get("Records"))
        return answer


def test_two_consumers_of_one_stream_get_every_record_from_one_reading(logs_stream: tuple[Any, Any]) -> None:
    ddb, ddb_streams = logs_stream
    counted = CountingStreams(ddb_streams)
    reader = StreamReader(ddb, counted)
    first: list[int] = []
    second: list[int] = []
    pollers = [
        StreamPoller(lambda e, c: first.extend(_seqs(e)), [LOGS_TABLE], ddb, counted, reader=reader),
        StreamPoller(lambda e, c: second.extend(_seqs(e)), [LOGS_TABLE], ddb, counted, reader=reader),
    ]
    for poller in pollers:
        poller.start()
    reader.start()
    try:
        _put_batches(ddb, 5)
        _until(lambda: len(first) >= 5 and len(second) >= 5)
    finally:
        reader.stop()
        for poller in pollers:
            poller.stop()

    assert first == second == [1, 2, 3, 4, 5]
    assert counted.readings <= 5  # each record read once, not once per consumer


def test_a_consumer_retrying_a_batch_holds_up_only_itself(logs_stream: tuple[Any, Any]) -> None:
    # Independent mappings on AWS: one function failing does not delay the other's records.
    ddb, ddb_streams = logs_stream
    reader = StreamReader(ddb, ddb_streams)
    done: dict[str, float] = {}
    failing_taken: list[int] = []
    healthy_taken: list[int] = []

    def take(into: list[int], name: str) -> Callable[[dict[str, Any], Any], None]:
        def handler(event: dict[str, Any], context: Any) -> None:
            into.extend(_seqs(event))
            if len(into) >= 5:
                done.setdefault(name, time.monotonic())

        return handler

    failing = faulty_handler(
        take(failing_taken, "failing"), "fanout", [HandlerFault(handler="fanout", times=3)]
    )
    pollers = [
        StreamPoller(failing, [LOGS_TABLE], ddb, ddb_streams, reader=reader),
        StreamPoller(
            take(healthy_taken, "healthy"), [LOGS_TABLE], ddb, ddb_streams, name="run_events", reader=reader
        ),
    ]
    for poller in pollers:
        poller.start()
    reader.start()
    try:
        _put_batches(ddb, 5)
        _until(lambda: len(done) == 2)
    finally:
        reader.stop()
        for poller in pollers:
            poller.stop()

    assert failing_taken == healthy_taken == [1, 2, 3, 4, 5]
    # The failing one waited 0.1 + 0.2 + 0.4 s of backoff; the healthy one none of it.
    assert done["healthy"] < done["failing"] - 0.3


def test_a_batch_failing_past_its_retries_is_given_up_and_the_stream_goes_on(
    logs_stream: tuple[Any, Any],
) -> None:
    calls: list[list[int]] = []

    def handler(event: dict[str, Any], context: Any) -> None:
        calls.append(_seqs(event))
        if 1 in _seqs(event):
            raise RuntimeError("this batch always fails")

    poller = _poller(handler, logs_stream, retries=2)
    try:
        _put_batches(logs_stream[0], 1)
        _until(lambda: poller.given_up == 1)
        logs_stream[0].put_item(
            TableName=LOGS_TABLE, Item={"run_id": {"S": "r1"}, "seq": {"N": "2"}, "lines": {"L": []}}
        )
        _until(lambda: calls[-1] == [2])
    finally:
        poller.stop()

    assert calls == [[1], [1], [1], [2]]  # the first try, two retries, then the next batch


# -- AWS errors from the emulator ----------------------------------------------------------------
def test_throttled_log_writes_are_retried_and_every_line_is_stored_once_in_order(
    faulty_emulator: Callable[[list[AwsFault]], Settings],
) -> None:
    settings = faulty_emulator(
        [
            AwsFault(
                request="dynamodb:PutItem",
                match=LOGS_TABLE,
                error="ProvisionedThroughputExceededException",
                every=2,
            )
        ]
    )
    ddb = aws.client("dynamodb", settings)
    ddb.create_table(**create_logs_table_kwargs(LOGS_TABLE))
    store = LogStore(LOGS_TABLE, ddb)
    writer = LogWriter(store, "r1", "build", max_batch_bytes=400)

    for n in range(60):
        writer("stdout", f"line {n}")
    writer.close()

    stored = [line["text"] for batch in store.batches_after("r1", 0) for line in batch["lines"]]
    assert stored == [f"line {n}" for n in range(60)]
    assert (writer.lines_stored, writer.lines_dropped) == (60, 0)


def _artifact_step() -> StepMessage:
    return StepMessage.model_validate(
        {
            "token": "token",
            "run_id": "r1",
            "workflow": "ci",
            "step": "test",
            "spec": {"kind": "run", "artifacts": {"upload": ["reports/*.xml"]}},
        }
    )


def _artifacts(
    tmp_path: Path, settings: Settings
) -> tuple[dict[str, Any], list[tuple[str, str]], ArtifactStore]:
    store = ArtifactStore(BUCKET, s3_client(settings))
    store.client.create_bucket(Bucket=BUCKET)
    work = tmp_path / "work"
    (work / "reports").mkdir(parents=True)
    (work / "reports" / "unit.xml").write_text("<testsuite/>")
    (work / "reports" / "e2e.xml").write_text("<testsuite/>")
    said: list[tuple[str, str]] = []
    meta = upload(store, _artifact_step(), work, now(), lambda stream, text: said.append((stream, text)))
    return meta, said, store


def test_s3_errors_on_an_artifact_upload_are_retried_by_the_sdk(
    faulty_emulator: Callable[[list[AwsFault]], Settings], tmp_path: Path
) -> None:
    settings = faulty_emulator(
        [AwsFault(request="s3:PUT", match="reports/", error="InternalError", status=500, every=2)]
    )

    meta, said, store = _artifacts(tmp_path, settings)

    assert sorted(a["path"] for a in meta["artifacts"]) == ["reports/e2e.xml", "reports/unit.xml"]
    assert meta["artifact_warnings"] == [] and said == []
    assert all(store.client.head_object(Bucket=BUCKET, Key=a["key"]) for a in meta["artifacts"])


def test_an_artifact_s3_did_not_store_is_reported_and_never_claimed(
    faulty_emulator: Callable[[list[AwsFault]], Settings], tmp_path: Path
) -> None:
    settings = faulty_emulator(
        [AwsFault(request="s3:PUT", match="reports/unit.xml", error="InternalError", status=500)]
    )

    meta, said, store = _artifacts(tmp_path, settings)

    assert [a["path"] for a in meta["artifacts"]] == ["reports/e2e.xml"]
    assert meta["artifact_warnings"] == ["upload of 'reports/unit.xml' failed: S3UploadFailedError"]
    assert said == [
        ("stderr", "flowdeck: artifacts: upload of 'reports/unit.xml' failed: S3UploadFailedError")
    ]
    keys = [o["Key"] for o in store.client.list_objects_v2(Bucket=BUCKET).get("Contents", [])]
    assert keys == ["runs/ci/r1/test/reports/e2e.xml"]
