"""The item codec: plain JSON-like values to DynamoDB attribute values and back."""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer

_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def plain(value: Any) -> Any:
    """DynamoDB's Decimals back to int/float for JSON answers."""
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [plain(v) for v in value]
    return value


def to_attribute(value: Any) -> dict[str, Any]:
    """One JSON-like value as a DynamoDB attribute value (floats become exact Decimals)."""
    return dict(_serializer.serialize(json.loads(json.dumps(value), parse_float=Decimal)))


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """A whole item of JSON-like values in DynamoDB's attribute-value form."""
    return {k: to_attribute(v) for k, v in values.items()}


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item as plain values (ints and floats, lists for sets)."""
    return {k: plain(_deserializer.deserialize(v)) for k, v in item.items()}


def query_all(client: Any, query: dict[str, Any]) -> list[dict[str, Any]]:
    """Every item a Query matches, page after page, as plain values."""
    pages = client.get_paginator("query").paginate(**query)
    return [from_item(item) for page in pages for item in page["Items"]]
