"""Billable-request counters of the local stack (`bench/aws_cost.py` reads them).

Two homes, one shape (`{name: number}`):
- the emulator process counts AWS requests per (service, action) and DynamoDB capacity units when
  started with FLOWDECK_EMULATOR_COUNT=1 (`flowdeck.local.emulator`, GET/DELETE `/_flowdeck/counts`);
- this process counts what would be Lambda invocations and API Gateway traffic on AWS (`METER`):
  API requests, WebSocket handler calls, `@connections` posts, fan-out batches and records.
"""

from __future__ import annotations

import math
import threading
import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any, TypeVar

COUNT_ENV = "FLOWDECK_EMULATOR_COUNT"
COUNTS_PATH = "/_flowdeck/counts"
WRITE_UNIT_BYTES = 1024
# DynamoDB bills each index entry as its keys and projected attributes plus 100 bytes.
INDEX_ENTRY_OVERHEAD_BYTES = 100
READ_UNIT_BYTES = 4096

T = TypeVar("T")


def write_units(item_bytes: int) -> int:
    """DynamoDB write request units of one item write: 1 per started KB, at least 1."""
    return max(1, math.ceil(item_bytes / WRITE_UNIT_BYTES))


def read_units(read_bytes: int, consistent: bool) -> float:
    """Read request units of one read of `read_bytes` (a Query: all items read): 1 per started 4 KB
    strongly consistent, half that eventually consistent; at least one unit read."""
    units = max(1, math.ceil(read_bytes / READ_UNIT_BYTES))
    return float(units) if consistent else units / 2


class Meter:
    """Thread-safe named counters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[str, float] = defaultdict(float)

    def add(self, name: str, amount: float = 1) -> None:
        with self._lock:
            self._counts[name] += amount

    def snapshot(self) -> dict[str, float]:
        with self._lock:
            return dict(self._counts)

    def reset(self) -> None:
        with self._lock:
            self._counts.clear()

    def invoke(self, function: str, handler: Callable[..., T], *args: Any) -> T:
        """Call a Lambda handler, counting the invocation and its wall time (`lambda.<function>...`)."""
        started = time.perf_counter()
        try:
            return handler(*args)
        finally:
            self.add(f"lambda.{function}.invocations")
            self.add(f"lambda.{function}.seconds", time.perf_counter() - started)


METER = Meter()


# -- the emulator process ---------------------------------------------------------------------
_TARGET_SERVICES = {
    "DynamoDB_20120810": "dynamodb",
    "DynamoDBStreams_20120810": "dynamodbstreams",
    "AmazonSQS": "sqs",
    "AWSStepFunctions": "stepfunctions",
}
_request = threading.local()
_original_get_item: Callable[..., Any]


def request_name(environ: dict[str, Any]) -> str:
    """`service:Action` of one AWS request: JSON protocols name it in X-Amz-Target; REST ones
    (S3) by method. The service is taken from the SigV4 credential scope."""
    target = environ.get("HTTP_X_AMZ_TARGET", "")
    prefix, _, action = target.partition(".")
    service = _TARGET_SERVICES.get(prefix, "")
    if not service:
        # Credential=<key>/<date>/<region>/<service>/aws4_request
        scope = environ.get("HTTP_AUTHORIZATION", "").partition("Credential=")[2].split(",")[0].split("/")
        service = scope[3] if len(scope) > 3 else "unknown"
    return f"{service}:{action or environ.get('REQUEST_METHOD', 'GET')}"


def _item_bytes(item: Any) -> int:
    """Bytes DynamoDB bills an item by: attribute names plus values (moto's Item.size())."""
    return int(item.size()) if item is not None else 0


def _attrs_bytes(attrs: dict[str, Any]) -> int:
    from moto.dynamodb.models.dynamo_type import DynamoType
    from moto.dynamodb.models.utilities import bytesize

    return sum(bytesize(name) + DynamoType(value).size() for name, value in attrs.items())


def _index_entry(table: Any, index: Any, attrs: dict[str, Any]) -> dict[str, Any] | None:
    """What `index` holds of an item with `attrs` (its keys and projection); None if not in it (sparse)."""
    keys = [key["AttributeName"] for key in index.schema]
    if not all(name in attrs for name in keys):
        return None
    projection = index.projection or {}
    kind = projection.get("ProjectionType", "ALL")
    if kind == "ALL":
        return dict(attrs)
    names = {*keys, table.hash_key_attr, table.range_key_attr}
    if kind == "INCLUDE":
        names |= set(projection.get("NonKeyAttributes", []))
    return {name: value for name, value in attrs.items() if name in names}


def _entry_bytes(entry: dict[str, Any]) -> int:
    from moto.dynamodb.models.utilities import bytesize

    return sum(bytesize(name) + value.size() for name, value in entry.items()) + INDEX_ENTRY_OVERHEAD_BYTES


def index_write_units(table: Any, before: dict[str, Any], after: dict[str, Any]) -> int:
    """Write units DynamoDB bills a table's global secondary indexes for one item write, as AWS does:
    nothing for an index whose entry does not change (keys and projected attributes), one write of the
    entry's size when it appears, disappears or changes in place, two when its index key changes."""
    units = 0
    for index in getattr(table, "global_indexes", []):
        old, new = _index_entry(table, index, before), _index_entry(table, index, after)
        if old == new:
            continue
        keys = [key["AttributeName"] for key in index.schema]
        moved = old is not None and new is not None and any(old[k] != new[k] for k in keys)
        entries = [old, new] if moved else [new if new is not None else old]
        units += sum(write_units(_entry_bytes(entry)) for entry in entries if entry is not None)
    return units


def _count_write(
    table: Any, name: str, item_bytes: int, before: dict[str, Any], after: dict[str, Any]
) -> None:
    units = write_units(item_bytes) + index_write_units(table, before, after)
    METER.add(f"dynamodb.wru.{name}", units)
    METER.add("dynamodb.wru", units)


def _attrs_before(backend: Any, table: Any, table_name: str, key_source: dict[str, Any]) -> dict[str, Any]:
    """A copy of the stored item's attributes (writes change moto's item in place), {} if none."""
    import copy

    names = [n for n in (table.hash_key_attr, table.range_key_attr) if n]
    if not all(n in key_source for n in names):
        return {}
    item = _original_get_item(backend, table_name, {n: key_source[n] for n in names})
    return copy.deepcopy(item.attrs) if item is not None else {}


def install_emulator_counter() -> None:
    """Count every request moto serves and the DynamoDB capacity units of item reads and writes.

    Writes: PutItem by the item written; UpdateItem by the item after the update (AWS bills the
    larger of before and after: approximated by after, as most of our updates add); DeleteItem by the item
    deleted; a write refused by its condition by the item given (at least 1 WRU, as on AWS).
    Reads: GetItem by the item returned, Query by the items returned (our queries filter nothing),
    halved unless ConsistentRead. SQS receives are told apart by whether they returned messages.
    Adds GET (read) and DELETE (reset) `/_flowdeck/counts`.
    """
    import json

    from moto.dynamodb.models import DynamoDBBackend
    from moto.dynamodb.responses import DynamoHandler
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication
    from moto.sqs.models import SQSBackend

    original_call = DomainDispatcherApplication.__call__

    def call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
        if environ.get("PATH_INFO") == COUNTS_PATH:
            if environ.get("REQUEST_METHOD") == "DELETE":
                METER.reset()
            body = json.dumps(METER.snapshot()).encode()
            headers = [("Content-Type", "application/json"), ("Content-Length", str(len(body)))]
            start_response("200 OK", headers)
            return [body]
        METER.add(f"requests.{request_name(environ)}")
        return original_call(self, environ, start_response)

    DomainDispatcherApplication.__call__ = call  # type: ignore[method-assign]

    original_get_item_response = DynamoHandler.get_item

    def get_item_response(self: Any) -> Any:
        _request.consistent = bool(self.body.get("ConsistentRead"))
        return original_get_item_response(self)

    DynamoHandler.get_item = get_item_response  # type: ignore[method-assign]

    original_put, original_update = DynamoDBBackend.put_item, DynamoDBBackend.update_item
    original_delete, original_get, original_query = (
        DynamoDBBackend.delete_item,
        DynamoDBBackend.get_item,
        DynamoDBBackend.query,
    )
    global _original_get_item
    _original_get_item = original_get  # reads of the item before a write: not billed, not counted

    def put_item(self: Any, table_name: str, item_attrs: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        before = _attrs_before(self, table, table_name, item_attrs)
        try:
            item = original_put(self, table_name, item_attrs, *args, **kwargs)
        except Exception:
            _count_write(table, table_name, _attrs_bytes(item_attrs), before, before)
            raise
        _count_write(table, table_name, _item_bytes(item), before, item.attrs)
        return item

    def update_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        key = kwargs["key"] if "key" in kwargs else args[0]
        before = _attrs_before(self, table, table_name, key)
        try:
            item = original_update(self, table_name, *args, **kwargs)
        except Exception:
            _count_write(table, table_name, 0, before, before)
            raise
        _count_write(table, table_name, _item_bytes(item), before, item.attrs)
        return item

    def delete_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        table = self.get_table(table_name)
        item = original_delete(self, table_name, *args, **kwargs)
        _count_write(table, table_name, _item_bytes(item), item.attrs if item is not None else {}, {})
        return item

    def get_item(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        item = original_get(self, table_name, *args, **kwargs)
        units = read_units(_item_bytes(item), getattr(_request, "consistent", False))
        _request.consistent = False
        METER.add(f"dynamodb.rru.{table_name}", units)
        METER.add("dynamodb.rru", units)
        return item

    def query(self: Any, table_name: str, *args: Any, **kwargs: Any) -> Any:
        answer = original_query(self, table_name, *args, **kwargs)
        units = read_units(sum(_item_bytes(item) for item in answer[0]), bool(kwargs.get("consistent_read")))
        METER.add(f"dynamodb.rru.{table_name}", units)
        METER.add("dynamodb.rru", units)
        return answer

    original_receive = SQSBackend.receive_message

    def receive_message(self: Any, *args: Any, **kwargs: Any) -> Any:
        messages = original_receive(self, *args, **kwargs)
        # Long polls that return nothing are an idle worker's cost, not a run's: told apart here.
        METER.add("sqs.receives_with_messages" if messages else "sqs.receives_empty")
        return messages

    SQSBackend.receive_message = receive_message  # type: ignore[method-assign]
    DynamoDBBackend.put_item = put_item  # type: ignore[method-assign]
    DynamoDBBackend.update_item = update_item  # type: ignore[method-assign]
    DynamoDBBackend.delete_item = delete_item  # type: ignore[method-assign]
    DynamoDBBackend.get_item = get_item  # type: ignore[method-assign]
    DynamoDBBackend.query = query  # type: ignore[method-assign]
