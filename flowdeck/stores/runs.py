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
from flowdeck.constants import (
    ATTEMPT_PREFIX,
    LOST_TOKEN,
    OUTPUTS_PREFIX,
    OUTPUTS_SK,
    PK,
    RUN_SK,
    SK,
    STEP_SK_PREFIX,
    TOKENS_IN_PREFIX,
    TOKENS_OUT_PREFIX,
)
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


def outputs_of(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.removeprefix(OUTPUTS_PREFIX): v for k, v in item.items() if k.startswith(OUTPUTS_PREFIX)}


def _to_ddb(value: Any) -> dict[str, Any]:
    return dict(_serializer.serialize(json.loads(json.dumps(value), parse_float=Decimal)))


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

    def __init__(self, table_name: str, client: Any = None, artifacts: Any = None) -> None:
        """`artifacts` (an ArtifactStore) reads back step outputs that were too large to keep inline."""
        self.table = table_name
        self.client = client or aws.client("dynamodb")
        self.artifacts = artifacts

    def _resolved(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Offloaded outputs ({"$ref": "s3://..."}) replaced by their content."""
        if self.artifacts is None:
            return outputs
        return {step: self.artifacts.resolve(value) for step, value in outputs.items()}

    # -- reads ------------------------------------------------------------------------------
    def get_run_items(
        self, run_id: str
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The run item, its step items by step id, and the published outputs (one Query)."""
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
        steps = {i[SK].removeprefix(STEP_SK_PREFIX): i for i in items if i[SK].startswith(STEP_SK_PREFIX)}
        outputs = self._resolved(outputs_of(next((i for i in items if i[SK] == OUTPUTS_SK), {})))
        return run, steps, outputs

    def step_outputs(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Published outputs of the run's steps so far, by step id (what later steps see)."""
        answer = self.client.get_item(
            TableName=self.table, Key={PK: {"S": run_id}, SK: {"S": OUTPUTS_SK}}, ConsistentRead=True
        )
        return self._resolved(outputs_of(from_item(answer.get("Item", {}))))

    def publish_outputs(self, run_id: str, step_id: str, outputs: dict[str, Any]) -> None:
        """Add one step's outputs to the run's outputs item (creating it on first use)."""
        self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": OUTPUTS_SK}},
            UpdateExpression="SET #step = :outputs",
            ExpressionAttributeNames={"#step": OUTPUTS_PREFIX + step_id},
            ExpressionAttributeValues={":outputs": _to_ddb(outputs)},
        )

    def query_runs(
        self,
        workflow: str | None,
        newest_first: bool,
        limit: int,
        cursor: str | None,
        filters: dict[str, str],
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
    def start_attempt(
        self, run_id: str, step_id: str, token: str, attempt: int, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Record the attempt's start once per task token and attempt; the item written, or None.

        SQS delivers at least once: the token's hash on the step makes a second delivery of the
        same message fail the write's condition, so it is not run twice. Whole-item puts, not
        updates: only this worker writes the step while the attempt runs, and a put is cheaper.
        """
        # With the attempt: moto reuses one token across a state's retries (AWS issues a new one).
        digest = hashlib.sha256(f"{token}:{attempt}".encode()).hexdigest()[:32]
        item: dict[str, Any] = {}
        if attempt > 1:
            previous = self.client.get_item(
                TableName=self.table, Key=self._step_key(run_id, step_id), ConsistentRead=True
            )
            item = {
                k: v for k, v in from_item(previous.get("Item", {})).items() if k.startswith(ATTEMPT_PREFIX)
            }
        item |= {
            PK: run_id,
            SK: STEP_SK_PREFIX + step_id,
            "step": step_id,
            "attempt": attempt,
            "token": digest,
        }
        item |= fields | {ATTEMPT_PREFIX + str(attempt): fields | {"attempt": attempt}}
        try:
            # A step the state machine gave up on (token "lost") is final: a late redelivery is refused.
            self._put(
                item,
                "attribute_not_exists(#token) OR (#token <> :token AND #token <> :lost)",
                {":token": digest, ":lost": LOST_TOKEN},
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return item

    def finish_attempt(
        self,
        started: dict[str, Any],
        fields: dict[str, Any],
        attempt_fields: dict[str, Any],
    ) -> bool:
        """Record how the attempt ended; False if the step was taken over meanwhile.

        The state machine marks a step whose worker it gave up on (token "lost"): a late finish
        from that worker must not overwrite the record.
        """
        record_name = ATTEMPT_PREFIX + str(started["attempt"])
        item = started | fields | {record_name: started[record_name] | attempt_fields}
        try:
            self._put(item, "#token = :token", {":token": started["token"]})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return False
            raise
        return True

    def update_running(self, started: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any] | None:
        """Re-put the running step's item with `fields` (usage so far); None if taken over meanwhile."""
        item = started | fields
        try:
            self._put(item, "#token = :token", {":token": started["token"]})
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        return item

    def add_run_usage(
        self, run_id: str, cost_usd: Decimal, tokens: dict[str, tuple[int, int]]
    ) -> Decimal | None:
        """Add a step's usage delta to the run's totals (atomic ADD); the run's new cost, None if no run."""
        names = {"#cost": "cost_usd", "#pk": PK}
        values: dict[str, Any] = {":cost": {"N": format(cost_usd, "f")}}
        parts = ["#cost :cost"]
        for index, (model, (input_tokens, output_tokens)) in enumerate(sorted(tokens.items())):
            names |= {f"#i{index}": TOKENS_IN_PREFIX + model, f"#o{index}": TOKENS_OUT_PREFIX + model}
            values |= {f":i{index}": {"N": str(input_tokens)}, f":o{index}": {"N": str(output_tokens)}}
            parts += [f"#i{index} :i{index}", f"#o{index} :o{index}"]
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression="ADD " + ", ".join(parts),
                # Never create a bare run item for a run the state machine has not recorded.
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
                return None
            raise
        total = answer.get("Attributes", {}).get("cost_usd")
        if total is None:
            # An ADD of zero may come back without the attribute (moto): read the total instead.
            current = self.client.get_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                ProjectionExpression="#cost",
                ExpressionAttributeNames={"#cost": "cost_usd"},
                ConsistentRead=True,
            )
            total = current.get("Item", {}).get("cost_usd", {"N": "0"})
        return Decimal(total["N"])

    def _put(self, item: dict[str, Any], condition: str, values: dict[str, str]) -> None:
        self.client.put_item(
            TableName=self.table,
            Item={k: _to_ddb(v) for k, v in item.items()},
            ConditionExpression=condition,
            ExpressionAttributeNames={"#token": "token"},
            ExpressionAttributeValues={name: {"S": value} for name, value in values.items()},
        )

    def _step_key(self, run_id: str, step_id: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step_id}}
