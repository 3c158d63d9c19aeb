"""The emulator's GetRecords waits for a stream record instead of answering at once with none."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from flowdeck.local.emulator import STREAM_WAIT_SECONDS
from flowdeck.stores.schema import create_table_kwargs
from tests.emulator_process import emulator_client, emulator_process


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with emulator_process() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def stream(emulator: str) -> tuple[Any, Any, str, str]:
    """(dynamodb, dynamodbstreams, the table's stream ARN, its shard id)."""
    ddb, streams = emulator_client(emulator, "dynamodb"), emulator_client(emulator, "dynamodbstreams")
    ddb.create_table(**create_table_kwargs("streamed"))
    arn = ddb.describe_table(TableName="streamed")["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    return ddb, streams, arn, shard["ShardId"]


def latest(streams: Any, arn: str, shard: str) -> str:
    answer = streams.get_shard_iterator(StreamArn=arn, ShardId=shard, ShardIteratorType="LATEST")
    return str(answer["ShardIterator"])


def put(ddb: Any, n: int) -> None:
    ddb.put_item(TableName="streamed", Item={"pk": {"S": "r1"}, "sk": {"S": f"STEP#{n}"}})


def test_a_record_written_while_a_reader_waits_is_handed_over_at_once(stream):
    ddb, streams, arn, shard = stream
    iterator = latest(streams, arn, shard)
    writer = threading.Timer(0.3, put, args=(ddb, 1))
    writer.start()

    began = time.monotonic()
    answer = streams.get_records(ShardIterator=iterator, Limit=100)
    took = time.monotonic() - began

    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in answer["Records"]] == ["STEP#1"]
    assert 0.25 < took < STREAM_WAIT_SECONDS  # it waited for the write, and no longer


def test_records_already_there_are_answered_without_waiting(stream):
    ddb, streams, arn, shard = stream
    iterator = latest(streams, arn, shard)
    put(ddb, 2)
    put(ddb, 3)

    began = time.monotonic()
    answer = streams.get_records(ShardIterator=iterator, Limit=100)

    assert time.monotonic() - began < 0.5
    assert [r["dynamodb"]["Keys"]["sk"]["S"] for r in answer["Records"]] == ["STEP#2", "STEP#3"]


def test_with_nothing_written_the_answer_is_empty_after_the_wait(stream):
    _, streams, arn, shard = stream
    iterator = latest(streams, arn, shard)

    began = time.monotonic()
    answer = streams.get_records(ShardIterator=iterator, Limit=100)

    assert answer["Records"] == []
    assert time.monotonic() - began >= STREAM_WAIT_SECONDS * 0.9
    assert answer["NextShardIterator"]
