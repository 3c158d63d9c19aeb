"""The emulator's opt-in counter (FLOWDECK_EMULATOR_COUNT=1): requests and DynamoDB capacity units."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from flowdeck.local.metering import COUNTS_PATH
from tests.emulator_process import emulator_client, emulator_process


@pytest.fixture(scope="module")
def counting_emulator() -> Iterator[str]:
    with emulator_process({"FLOWDECK_EMULATOR_COUNT": "1"}) as endpoint:
        yield endpoint


def _ddb(endpoint: str) -> Any:
    return emulator_client(endpoint, "dynamodb")


def test_put_item_is_counted_with_its_write_units(counting_emulator: str) -> None:
    # Given a table and reset counters
    ddb = _ddb(counting_emulator)
    ddb.create_table(
        TableName="t",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    assert httpx.delete(counting_emulator + COUNTS_PATH).json() == {}
    # When one small item and one of 2.5 KB are put, and the big one read back eventually consistent
    ddb.put_item(TableName="t", Item={"pk": {"S": "a"}, "v": {"S": "x"}})
    ddb.put_item(TableName="t", Item={"pk": {"S": "b"}, "v": {"S": "x" * 2500}})
    ddb.get_item(TableName="t", Key={"pk": {"S": "b"}})
    ddb.get_item(TableName="t", Key={"pk": {"S": "b"}}, ConsistentRead=True)
    counts = httpx.get(counting_emulator + COUNTS_PATH).json()
    # Then: 1 WRU + ceil(2.5 KB / 1 KB) = 3 WRU; reads 0.5 + 1 RRU
    assert counts["requests.dynamodb:PutItem"] == 2
    assert counts["requests.dynamodb:GetItem"] == 2
    assert counts["dynamodb.wru"] == 1 + 3
    assert counts["dynamodb.wru.t"] == 4
    assert counts["dynamodb.rru"] == 0.5 + 1


def test_index_writes_are_counted_only_when_the_index_entry_changes(counting_emulator: str) -> None:
    # Given a table with a sparse INCLUDE index (k, s) projecting p, and an item of ~2 KB (2 WRU)
    ddb = _ddb(counting_emulator)
    ddb.create_table(
        TableName="g",
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "k", "AttributeType": "S"},
            {"AttributeName": "s", "AttributeType": "N"},
        ],
        GlobalSecondaryIndexes=[
            {
                "IndexName": "by-k",
                "KeySchema": [
                    {"AttributeName": "k", "KeyType": "HASH"},
                    {"AttributeName": "s", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["p"]},
            }
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    key = {"pk": {"S": "a"}}

    def units_of(write: Any) -> float:
        httpx.delete(counting_emulator + COUNTS_PATH)
        write()
        return httpx.get(counting_emulator + COUNTS_PATH).json()["dynamodb.wru.g"]

    def update(expression: str, values: dict[str, Any] | None = None) -> Any:
        extra = {"ExpressionAttributeValues": values} if values else {}
        return lambda: ddb.update_item(TableName="g", Key=key, UpdateExpression=expression, **extra)

    item = key | {"k": {"S": "x"}, "s": {"N": "1"}, "p": {"S": "v"}, "big": {"S": "y" * 2000}}
    # When the item is put, then updated in ways that touch the index entry or not
    # Then: the table's 2 WRU, plus 1 WRU when the index entry appears, changes or goes, 2 when it moves
    assert units_of(lambda: ddb.put_item(TableName="g", Item=item)) == 2 + 1
    assert units_of(update("SET big = :b", {":b": {"S": "z" * 2000}})) == 2 + 0
    assert units_of(update("SET p = :p", {":p": {"S": "w"}})) == 2 + 1
    assert units_of(update("SET s = :s", {":s": {"N": "2"}})) == 2 + 2
    assert units_of(update("REMOVE k")) == 2 + 1
    assert units_of(update("SET p = :p", {":p": {"S": "q"}})) == 2 + 0
