"""The runs table: run records (written by the state machine and workers) and their reads."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from flowdeck import aws
from flowdeck.constants import PK, RUN_SK, SK, STEP_SK_PREFIX
from flowdeck.errors import BadRequest
from flowdeck.stores.schema import (
    BY_STARTED_INDEX,
    BY_WORKFLOW_INDEX,
    GLOBAL_INDEXES,
    KEY_ATTRIBUTES,
    RUN_KIND,
)

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def _plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float for JSON answers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def _to_ddb(value: Any) -> dict[str, Any]:
    return _serializer.serialize(json.loads(json.dumps(value), parse_float=Decimal))


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    return {k: _plain(_deserializer.deserialize(v)) for k, v in item.items()}


def encode_cursor(key: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(key, separators=(",", ":")).encode()).decode()


def decode_cursor(cursor: str, index: str | None = None) -> dict[str, Any]:
    """The start key in `cursor`; with `index`, also check it is a key of that index (else DynamoDB errs)."""
    try:
        key = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API returned") from None
    if not isinstance(key, dict) or not all(isinstance(v, dict) for v in key.values()):
        raise BadRequest("cursor is not one this API returned")
    if index is not None:
        names = {PK, SK, *GLOBAL_INDEXES[index]}
        if set(key) != names or any(set(key[n]) != {KEY_ATTRIBUTES[n]} for n in names):
            raise BadRequest("cursor is not one this API returned for this query")
    return key


class RunStore:
    """Reads and writes run items (sk RUN), step output items (STEP#id) and dispatch claims."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = table_name
        self.client = client or aws.client("dynamodb")

    # -- reads ------------------------------------------------------------------------------
    def get_run_items(self, run_id: str) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]]]:
        """The run item and its step-output items, by step id (one Query, consistent)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": run_id}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            items += [from_item(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        run = next((i for i in items if i[SK] == RUN_SK), None)
        steps = {i["step"]: i for i in items if i[SK].startswith(STEP_SK_PREFIX)}
        return run, steps

    def step_outputs(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Published outputs of the run's steps so far, by step id (what later steps see)."""
        outputs: dict[str, dict[str, Any]] = {}
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk AND begins_with(#sk, :prefix)",
            "ExpressionAttributeNames": {"#pk": PK, "#sk": SK},
            "ExpressionAttributeValues": {":pk": {"S": run_id}, ":prefix": {"S": STEP_SK_PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            for item in page["Items"]:
                plain = from_item(item)
                outputs[plain["step"]] = plain.get("outputs", {})
            if "LastEvaluatedKey" not in page:
                return outputs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def query_runs(
        self, workflow: str | None, newest_first: bool, limit: int, cursor: str | None, filters: dict[str, str]
    ) -> tuple[list[dict[str, Any]], str | None]:
        """A page of run items from the sparse start-time indexes, filtered."""
        names = {"#k": "workflow" if workflow else "kind"}
        values: dict[str, Any] = {":k": {"S": workflow or RUN_KIND}}
        conditions = []
        for index, (attribute, value) in enumerate(sorted(filters.items())):
            names[f"#f{index}"] = attribute
            values[f":f{index}"] = {"S": value}
            conditions.append(f"#f{index} = :f{index}")
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": BY_WORKFLOW_INDEX if workflow else BY_STARTED_INDEX,
            "KeyConditionExpression": "#k = :k",
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ScanIndexForward": not newest_first,
            "Limit": limit,
        }
        if conditions:
            kwargs["FilterExpression"] = " AND ".join(conditions)
        if cursor:
            kwargs["ExclusiveStartKey"] = decode_cursor(cursor, kwargs["IndexName"])
        found: list[dict[str, Any]] = []
        # Filters may empty a page; keep reading (bounded) until the page is full or the index ends.
        for _ in range(20):
            page = self.client.query(**kwargs)
            found += [from_item(i) for i in page["Items"]]
            last = page.get("LastEvaluatedKey")
            if last is None or len(found) >= limit:
                break
            kwargs["ExclusiveStartKey"] = last
            kwargs["Limit"] = limit - len(found)
        return found[:limit], encode_cursor(last) if last else None

    # -- worker writes ----------------------------------------------------------------------
    def start_attempt(self, run_id: str, step_id: str, token: str, attempt: int, fields: dict[str, Any]) -> bool:
        """Mark the step running for this attempt, once per task token.

        SQS delivers at least once; the token's hash on the step makes a second delivery of the
        same message a no-op (False) in the same write that records the start.
        """
        # With the attempt: moto reuses one token across a state's retries (AWS issues a new one).
        digest = hashlib.sha256(f"{token}:{attempt}".encode()).hexdigest()[:32]
        fields = fields | {"attempt": attempt, "token": digest}
        try:
            self.update_step(
                run_id,
                step_id,
                fields,
                attempt=attempt,
                new_attempt=True,
                condition="attribute_not_exists(#steps.#step.#token) OR #steps.#step.#token <> :token",
                condition_names={"#token": "token"},
                condition_values={":token": {"S": digest}},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update_step(
        self,
        run_id: str,
        step_id: str,
        fields: dict[str, Any],
        attempt: int | None = None,
        new_attempt: bool = False,
        attempt_fields: dict[str, Any] | None = None,
        condition: str | None = None,
        condition_names: dict[str, str] | None = None,
        condition_values: dict[str, Any] | None = None,
    ) -> None:
        """SET fields of the step's entry in the run item, and of attempt `attempt` when given."""
        names = {"#steps": "steps", "#step": step_id}
        values: dict[str, Any] = {}
        sets = []
        for index, (name, value) in enumerate(fields.items()):
            names[f"#a{index}"] = name
            values[f":v{index}"] = _to_ddb(value)
            sets.append(f"#steps.#step.#a{index} = :v{index}")
        if attempt is not None:
            names["#attempts"] = "attempts"
            names["#n"] = str(attempt)
            if new_attempt:
                record = {k: v for k, v in fields.items() if k not in ("attempt", "token")}
                values[":record"] = _to_ddb(record | {"attempt": attempt})
                sets.append("#steps.#step.#attempts.#n = :record")
            else:
                overrides = attempt_fields or {}
                for i, name in enumerate(fields):
                    if name in overrides:
                        values[f":o{i}"] = _to_ddb(overrides[name])
                        sets.append(f"#steps.#step.#attempts.#n.#a{i} = :o{i}")
                    elif name != "attempt":
                        sets.append(f"#steps.#step.#attempts.#n.#a{i} = :v{i}")
        kwargs: dict[str, Any] = {}
        if condition:
            kwargs["ConditionExpression"] = condition
            names |= condition_names or {}
            values |= condition_values or {}
        self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            **kwargs,
        )

    def put_step_outputs(self, run_id: str, step_id: str, attempt: int, outputs: dict[str, Any]) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={
                PK: {"S": run_id},
                SK: {"S": STEP_SK_PREFIX + step_id},
                "step": {"S": step_id},
                "attempt": {"N": str(attempt)},
                "outputs": _to_ddb(outputs),
            },
        )
