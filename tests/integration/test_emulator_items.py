"""Item reads and updates the emulator does its own way: answers as moto's and DynamoDB's.

Each update expression is parsed once (every use still gets its own names and values); a projection of
top-level attributes picks them from the item.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowdeck.stores.schema import create_table_kwargs
from tests.emulator_process import emulator_client, emulator_process

TABLE = "updated"
EXPRESSION = "SET #s = :s, #n = :n ADD #c :one REMOVE #gone"


@pytest.fixture(scope="module")
def ddb() -> Iterator[Any]:
    with emulator_process() as endpoint:
        client = emulator_client(endpoint, "dynamodb")
        client.create_table(**create_table_kwargs(TABLE))
        yield client


def update(ddb: Any, sk: str, status: str, name: str) -> dict[str, Any]:
    return ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "r1"}, "sk": {"S": sk}},
        UpdateExpression=EXPRESSION,
        ExpressionAttributeNames={"#s": "status", "#n": name, "#c": "count", "#gone": "old"},
        ExpressionAttributeValues={":s": {"S": status}, ":n": {"S": name}, ":one": {"N": "1"}},
        ReturnValues="ALL_NEW",
    )["Attributes"]


def test_one_expression_used_again_applies_each_uses_own_names_and_values(ddb: Any) -> None:
    first = update(ddb, "STEP#a", "running", "first")
    again = update(ddb, "STEP#a", "succeeded", "second")
    other = update(ddb, "STEP#b", "failed", "third")

    assert (first["status"], first["first"], first["count"]) == ({"S": "running"}, {"S": "first"}, {"N": "1"})
    assert (again["status"], again["second"], again["count"]) == (
        {"S": "succeeded"},
        {"S": "second"},
        {"N": "2"},
    )
    assert (other["status"], other["third"], other["count"]) == ({"S": "failed"}, {"S": "third"}, {"N": "1"})


def test_an_expression_that_does_not_parse_is_refused_every_time(ddb: Any) -> None:
    for _ in range(2):
        with pytest.raises(ClientError) as refused:
            ddb.update_item(
                TableName=TABLE,
                Key={"pk": {"S": "r1"}, "sk": {"S": "STEP#c"}},
                UpdateExpression="SET #s = = :s",
                ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "x"}},
            )
        assert refused.value.response["Error"]["Code"] == "ValidationException"


ITEM = {
    "pk": {"S": "r1"},
    "sk": {"S": "RUN"},
    "status": {"S": "cancelling"},
    "cost": {"N": "0.25"},
    "blob": {"B": b"\x00\x01binary"},
    "tags": {"SS": ["a", "b"]},
    "plan": {"M": {"steps": {"L": [{"S": "build"}, {"S": "deploy"}]}, "note": {"NULL": True}}},
    "flag": {"BOOL": False},
}


def test_a_projection_of_top_level_attributes_answers_exactly_those_values(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=ITEM)

    answer = ddb.get_item(
        TableName=TABLE,
        Key={"pk": ITEM["pk"], "sk": ITEM["sk"]},
        ProjectionExpression="#s, #c, #b, #t, #p, #f, #m",
        ExpressionAttributeNames={
            "#s": "status",
            "#c": "cost",
            "#b": "blob",
            "#t": "tags",
            "#p": "plan",
            "#f": "flag",
            "#m": "missing",
        },
        ConsistentRead=True,
    )["Item"]

    assert answer == {k: v for k, v in ITEM.items() if k not in ("pk", "sk")}


def test_a_projection_of_nested_paths_is_still_answered(ddb: Any) -> None:
    ddb.put_item(TableName=TABLE, Item=ITEM)

    answer = ddb.get_item(
        TableName=TABLE,
        Key={"pk": ITEM["pk"], "sk": ITEM["sk"]},
        ProjectionExpression="#p.steps[1], #s",
        ExpressionAttributeNames={"#s": "status", "#p": "plan"},
    )["Item"]

    assert answer == {"plan": {"M": {"steps": {"L": [{"S": "deploy"}]}}}, "status": {"S": "cancelling"}}
