"""The emulator's transactions check every condition first, then write all of their items or none."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowdeck.stores.schema import create_table_kwargs
from tests.emulator_process import emulator_client, emulator_process

TABLE = "transacted"


@pytest.fixture(scope="module")
def emulator() -> Iterator[str]:
    with emulator_process() as endpoint:
        yield endpoint


@pytest.fixture(scope="module")
def ddb(emulator: str) -> Any:
    client = emulator_client(emulator, "dynamodb")
    client.create_table(**create_table_kwargs(TABLE))
    return client


def key(sk: str) -> dict[str, Any]:
    return {"pk": {"S": "r1"}, "sk": {"S": sk}}


def put(sk: str, condition: str | None = None) -> dict[str, Any]:
    request: dict[str, Any] = {"TableName": TABLE, "Item": key(sk) | {"n": {"N": "1"}}}
    if condition:
        request |= {"ConditionExpression": condition}
    return {"Put": request}


def check_absent(sk: str, attribute: str, all_old: bool = False) -> dict[str, Any]:
    request: dict[str, Any] = {
        "TableName": TABLE,
        "Key": key(sk),
        "ConditionExpression": "attribute_not_exists(#a)",
        "ExpressionAttributeNames": {"#a": attribute},
    }
    if all_old:
        request["ReturnValuesOnConditionCheckFailure"] = "ALL_OLD"
    return {"ConditionCheck": request}


def test_a_failed_condition_check_writes_nothing_and_names_the_reason(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=key("RUN") | {"cancel_requested_at": {"S": "now"}})

    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(
            TransactItems=[put("STEP#a"), check_absent("RUN", "cancel_requested_at", all_old=True)]
        )

    reasons = refused.value.response["CancellationReasons"]
    assert [r["Code"] for r in reasons] == ["None", "ConditionalCheckFailed"]
    assert reasons[1]["Item"]["cancel_requested_at"] == {"S": "now"}
    assert "Item" not in ddb.get_item(TableName=TABLE, Key=key("STEP#a"))


def test_when_every_condition_holds_every_item_is_written(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=key("RUN2"))

    ddb.transact_write_items(
        TransactItems=[
            put("STEP#b", condition="attribute_not_exists(pk)"),
            check_absent("RUN2", "cancel_requested_at"),
            {
                "Update": {
                    "TableName": TABLE,
                    "Key": key("TOTALS"),
                    "UpdateExpression": "ADD #c :one",
                    "ExpressionAttributeNames": {"#c": "count"},
                    "ExpressionAttributeValues": {":one": {"N": "1"}},
                }
            },
        ]
    )

    assert ddb.get_item(TableName=TABLE, Key=key("STEP#b"))["Item"]["n"] == {"N": "1"}
    assert ddb.get_item(TableName=TABLE, Key=key("TOTALS"))["Item"]["count"] == {"N": "1"}


def test_a_put_whose_own_condition_fails_is_refused_as_the_first_reason(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=key("STEP#c") | {"n": {"N": "7"}})

    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=[put("STEP#c", condition="attribute_not_exists(pk)")])

    assert [r["Code"] for r in refused.value.response["CancellationReasons"]] == ["ConditionalCheckFailed"]
    assert ddb.get_item(TableName=TABLE, Key=key("STEP#c"))["Item"]["n"] == {"N": "7"}


def test_one_item_named_twice_is_refused_as_moto_refuses_it(ddb: Any) -> None:
    with pytest.raises(ClientError) as refused:
        ddb.transact_write_items(TransactItems=[put("STEP#d"), check_absent("STEP#d", "x")])

    assert refused.value.response["Error"]["Code"] == "ValidationException"
    assert "Item" not in ddb.get_item(TableName=TABLE, Key=key("STEP#d"))


def test_a_refused_transaction_leaves_nothing_in_the_stream(emulator: str, ddb: Any) -> None:
    # moto wrote the put, then restored a copy of the table: a stream reader still got the put.
    streams = emulator_client(emulator, "dynamodbstreams")
    arn = ddb.describe_table(TableName=TABLE)["Table"]["LatestStreamArn"]
    (shard,) = streams.describe_stream(StreamArn=arn)["StreamDescription"]["Shards"]
    ddb.put_item(TableName=TABLE, Item=key("RUN4") | {"cancel_requested_at": {"S": "now"}})
    iterator = streams.get_shard_iterator(StreamArn=arn, ShardId=shard["ShardId"], ShardIteratorType="LATEST")

    with pytest.raises(ClientError):
        ddb.transact_write_items(TransactItems=[put("STEP#e"), check_absent("RUN4", "cancel_requested_at")])

    assert streams.get_records(ShardIterator=iterator["ShardIterator"])["Records"] == []


def test_connections_are_kept_alive_between_calls(ddb: Any) -> None:
    # moto's own server answered every request with `Connection: close`: each call paid a new one.
    answers: list[dict[str, str]] = []
    ddb.meta.events.register(
        "after-call.dynamodb.ListTables", lambda http_response, **_: answers.append(http_response.headers)
    )

    ddb.list_tables()

    assert answers and answers[0].get("Connection", "").lower() != "close"
