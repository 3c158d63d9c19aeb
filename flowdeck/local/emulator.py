"""The local AWS: moto's services and their Step Functions executor, served over HTTP by waitress.

Run as its own process (`python -m flowdeck.local.emulator --port N`) so state machine
executions, the API server and the workers don't share one interpreter lock.
"""

from __future__ import annotations

import argparse
import functools
import logging
import os
import signal
import threading
from collections.abc import Callable
from typing import Any


def _speed_up_the_executor() -> None:
    """Two executor costs that AWS does not have, removed without changing behaviour.

    - The executor builds a new boto3 client for every service task (tens of ms each); its
      credentials are fake, so one client per (region, service) serves every call.
    - It parses a definition's ASL with ANTLR and builds its evaluation components at every
      execution start (~0.5 s for 20 steps). The components are immutable once built (an
      execution keeps its values in its own environment, keyed by each component's heap key),
      so each definition is parsed and built once and its program shared by its executions.
    - It parses every JSONPath at every evaluation, and jsonpath_ng builds a new yacc parser for
      each parse (~1 ms; a tenth of the emulator's CPU per step); a parsed path is immutable, so
      each distinct path is parsed once.
    """
    import importlib

    from moto.stepfunctions.parser.asl.component.common.path import result_path
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.utils import boto_client, json_path

    json_path.parse = functools.lru_cache(maxsize=4096)(json_path.parse)  # type: ignore[attr-defined]
    result_path.parse = functools.lru_cache(maxsize=4096)(result_path.parse)  # type: ignore[attr-defined]

    original_client = boto_client.boto_client_for

    @functools.lru_cache(maxsize=64)
    def shared_client(region: str, service: str) -> object:
        return original_client(region=region, service=service)

    def boto_client_for(region: str, service: str, state_credentials: object = None) -> object:
        return shared_client(region, service)

    for name in ("sqs", "dynamodb", "sns", "events", "sfn", "aws_sdk"):
        module = importlib.import_module(
            f"moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_{name}"
        )
        module.boto_client_for = boto_client_for  # type: ignore[attr-defined]

    original_parse = asl_parser.AmazonStateLanguageParser.parse
    parsed: dict[str, tuple[object, object]] = {}

    def parse(definition: str) -> tuple[object, object]:
        if definition not in parsed:
            program, tree = original_parse(definition)
            _fix_heap_keys(program)
            parsed[definition] = (program, tree)
        return parsed[definition]

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign,assignment]


def _fix_heap_keys(component: object, seen: set[int] | None = None) -> None:
    """Give every evaluation component of a program its heap key now, before executions share it.

    The key (where an evaluation keeps the component's values in its execution's heap) is drawn on
    first use; drawn by two executions at once, one of them would read under the other's key.
    """
    from moto.stepfunctions.parser.asl.component.component import Component
    from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent

    seen = set() if seen is None else seen
    if id(component) in seen:
        return
    seen.add(id(component))
    if isinstance(component, EvalComponent):
        _ = component.heap_key
    if isinstance(component, Component):
        children: list[Any] = list(vars(component).values())
    elif isinstance(component, dict):
        children = list(component.values())
    else:
        children = list(component) if isinstance(component, (list, tuple)) else []
    for child in children:
        if isinstance(child, (Component, list, tuple, dict)):
            _fix_heap_keys(child, seen)


def _speed_up_routing() -> None:
    """Two lists moto makes on every request to route it, which never change: its own package
    directory's modules, and the method names of the service's response class (inspect.getmembers).
    """
    from moto import backends
    from moto.core import responses
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    responses.method_names_from_class = functools.lru_cache(maxsize=256)(responses.method_names_from_class)  # type: ignore[attr-defined]

    modules = tuple(backends.list_of_moto_modules())
    backends.list_of_moto_modules = lambda: modules  # type: ignore[assignment]
    original = DomainDispatcherApplication.get_backend_for_host
    cache: dict[str | None, object] = {}

    def get_backend_for_host(self: object, host: str | None) -> object:
        if host not in cache:
            cache[host] = original(self, host)  # type: ignore[arg-type]
        return cache[host]

    DomainDispatcherApplication.get_backend_for_host = get_backend_for_host  # type: ignore[method-assign]


def _stop_with_parent(parent_pid: int, stopped: threading.Event) -> None:
    while os.getppid() == parent_pid and not stopped.wait(1.0):
        pass
    stopped.set()


_PLAIN_VALUE_TYPES = frozenset({"S", "N", "BOOL", "NULL", "SS", "NS", "L", "M"})


def _plain_attribute_value(value: object) -> bool:
    """A DynamoDB AttributeValue in wire form without binary members (those need (de)coding)."""
    if not isinstance(value, dict) or len(value) != 1:
        return False
    ((kind, inner),) = value.items()
    if kind not in _PLAIN_VALUE_TYPES:
        return False
    if kind == "L":
        return isinstance(inner, list) and all(_plain_attribute_value(v) for v in inner)
    if kind == "M":
        return isinstance(inner, dict) and all(_plain_attribute_value(v) for v in inner.values())
    return True


def _speed_up_dynamodb_values() -> None:
    """moto walks every AttributeValue through the service model on the way in and out (~0.1 s for a
    30 KB log batch: log items and their stream records are lists of maps). Wire-form values without
    binary members are the same before and after that walk, so they pass through as they are.
    """
    from moto.core.parse import BaseJSONParser
    from moto.core.serialize import JSONSerializer

    original_parse = BaseJSONParser._parse_structure

    def parse_structure(self: BaseJSONParser, shape: Any, value: Any) -> Any:
        if shape.name == "AttributeValue" and _plain_attribute_value(value):
            return value
        return original_parse(self, shape, value)

    original_serialize = JSONSerializer._serialize_type_structure

    def serialize_structure(self: Any, serialized: Any, value: Any, shape: Any, key: str) -> None:
        if key and shape.name == "AttributeValue" and _plain_attribute_value(value):
            serialized[self.get_serialized_name(shape, key)] = value
            return
        original_serialize(self, serialized, value, shape, key)

    BaseJSONParser._parse_structure = parse_structure  # type: ignore[method-assign]
    JSONSerializer._serialize_type_structure = serialize_structure  # type: ignore[method-assign]


def _project_top_level_attributes_directly() -> None:
    """A projection of top-level attributes picks them from the item.

    moto turns the whole item into plain JSON once per projected attribute, then back (a
    four-attribute read of a run item cost ~2 ms). Nested paths and list elements still go to moto.
    """
    from moto.dynamodb.models.dynamo_type import Item

    original = Item.project

    def project(self: Item, projection_expressions: list[list[str]]) -> Item:
        if not all(len(path) == 1 and "[" not in path[0] for path in projection_expressions):
            return original(self, projection_expressions)
        projected = Item(hash_key=self.hash_key, range_key=self.range_key, attrs={})
        for (name,) in projection_expressions:
            if name in self.attrs:
                projected.attrs[name] = self.attrs[name]
        return projected

    Item.project = project  # type: ignore[method-assign]


def _parse_update_expressions_once() -> None:
    """moto parses an UpdateItem's expression twice per request (~60 % of its CPU for a run record's
    long SET); each distinct expression is parsed once (its validation works on its own deep copy of
    the tree). An expression that does not parse is not kept: it is refused the same way each time.
    """
    from moto.dynamodb import models, responses
    from moto.dynamodb.parsing.expressions import UpdateExpressionParser  # type: ignore[attr-defined]

    class ParsedOnce:
        make = staticmethod(functools.lru_cache(maxsize=UPDATE_EXPRESSIONS_KEPT)(UpdateExpressionParser.make))

    models.UpdateExpressionParser = ParsedOnce  # type: ignore[attr-defined]
    responses.UpdateExpressionParser = ParsedOnce  # type: ignore[attr-defined]


# Distinct update expressions whose parse is kept (Flowdeck's are a few dozen; names and values
# are placeholders).
UPDATE_EXPRESSIONS_KEPT = 4096


def _forget_used_shard_iterators() -> None:
    """Drop a shard iterator once used (moto keeps them all; the stream poller takes 50 a second)."""
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    original = DynamoDBStreamsBackend.get_records

    def get_records(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
        answer = original(self, iterator_arn, limit)
        self.shard_iterators.pop(iterator_arn, None)
        return answer

    DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]


# How long GetRecords waits for a new stream record before it answers with none (_long_poll_streams).
STREAM_WAIT_SECONDS = 1.0


def _long_poll_streams(wait: float = STREAM_WAIT_SECONDS) -> None:
    """GetRecords waits for a record (up to `wait`) rather than answering at once with none.

    The local stack reads each stream as Lambda's event source does on AWS; read every 20 ms, three
    streams cost a quarter of a core while nothing happens and delay each record by up to a poll.
    Waiting here, as SQS long polling does, hands a record over the moment it is written (the same
    records, in the same order; only an empty answer comes later).
    """
    from moto.dynamodb.models.table import StreamShard
    from moto.dynamodbstreams.models import DynamoDBStreamsBackend

    written = threading.Condition()
    original_add = StreamShard.add

    def add(self: StreamShard, old: Any, new: Any) -> None:
        original_add(self, old, new)
        with written:
            written.notify_all()

    original_get = DynamoDBStreamsBackend.get_records

    def get_records(self: DynamoDBStreamsBackend, iterator_arn: str, limit: int) -> dict[str, Any]:
        iterator = self.shard_iterators.get(iterator_arn)
        if iterator is not None:
            shard = iterator.stream_shard
            with written:
                written.wait_for(
                    lambda: shard.starting_sequence_number + len(shard.items) > iterator.sequence_number,
                    timeout=wait,
                )
        return original_get(self, iterator_arn, limit)

    StreamShard.add = add  # type: ignore[method-assign]
    DynamoDBStreamsBackend.get_records = get_records  # type: ignore[method-assign]


# DynamoDB checks a write's condition and applies it atomically; moto's request threads do not (two
# conditional updates can both pass their checks). Serializing item writes restores the guarantee
# that conditional writes (concurrency slots, claims) rely on.
ITEM_WRITES = ("put_item", "update_item", "delete_item", "transact_write_items")


def serialized(method: Callable[..., Any], lock: threading.RLock) -> Callable[..., Any]:
    """`method` called under `lock`."""

    @functools.wraps(method)
    def call(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return method(*args, **kwargs)

    return call


TRANSACT_OPERATIONS = frozenset({"ConditionCheck", "Put", "Delete", "Update"})


def _transactions_check_then_write() -> None:
    """A transaction checks every condition, then writes all of its items or none, as DynamoDB does.

    moto deep-copies every table a transaction names (all of its items) before writing item by item,
    and restores the copy if one fails: each transaction costs as much as the whole table, and a
    stream reader may be handed a write that was then rolled back. Checked first, under the
    item-write lock, nothing needs undoing. Requests moto refuses as malformed still go to moto.
    """
    from moto.dynamodb.comparisons import get_filter_expression
    from moto.dynamodb.exceptions import TransactionCanceledException
    from moto.dynamodb.models import DynamoDBBackend

    original = DynamoDBBackend.transact_write_items

    def transact_write_items(self: DynamoDBBackend, transact_items: list[dict[str, Any]]) -> None:
        shapes_moto_refuses = len(transact_items) > 100 or any(
            len(entry) != 1 or not TRANSACT_OPERATIONS.issuperset(entry) for entry in transact_items
        )
        if shapes_moto_refuses:
            return original(self, transact_items)
        operations: list[tuple[str, dict[str, Any]]] = [next(iter(entry.items())) for entry in transact_items]
        targets: set[tuple[str, str]] = set()
        reasons: list[tuple[str | None, str | None, dict[str, Any] | None]] = []
        for _kind, op in operations:
            table = self.get_table(op["TableName"])
            key = op.get("Key") or {
                name: op["Item"][name] for name in (table.hash_key_attr, table.range_key_attr) if name
            }
            target = (op["TableName"], repr(sorted(key.items())))
            if target in targets:  # one item twice: moto's own ValidationException
                return original(self, transact_items)
            targets.add(target)
            current: Any = self.get_item(op["TableName"], key)
            condition = op.get("ConditionExpression")
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if condition is None or get_filter_expression(condition, names, values).expr(current):
                reasons.append((None, None, None))
                continue
            wants_old = op.get("ReturnValuesOnConditionCheckFailure") == "ALL_OLD" and current is not None
            old = current.to_json()["Attributes"] if wants_old else None
            reasons.append(("ConditionalCheckFailed", "The conditional request failed", old))
        if any(code is not None for code, _, _ in reasons):
            raise TransactionCanceledException(reasons)
        for kind, op in operations:
            names, values = op.get("ExpressionAttributeNames"), op.get("ExpressionAttributeValues")
            if kind == "Put":
                self.put_item(op["TableName"], op["Item"])
            elif kind == "Delete":
                self.delete_item(op["TableName"], op["Key"])
            elif kind == "Update":
                self.update_item(
                    op["TableName"], op["Key"], op["UpdateExpression"], names or {}, values or {}
                )
        return None

    DynamoDBBackend.transact_write_items = transact_write_items  # type: ignore[method-assign]


def _atomic_item_writes() -> None:
    """One DynamoDB item write at a time, so a condition and its write are atomic as on AWS."""
    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()
    for name in ITEM_WRITES:
        setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name), lock))


def _answers_per_attempt() -> None:
    """Each attempt of a callback task gets only its own answer, and keeps one that arrives early.

    moto keeps one task token (and answer slot) across a state's retries, so attempt 2 could read
    attempt 1's failure at its first heartbeat; and it sets the heartbeat up only after sending the
    message, then waits for a beat before reading the answer, so a worker answering within that gap
    (a step a retry reuses answers at once) was lost: the task failed at its heartbeat timeout.
    """
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
        StateTaskService,
    )
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    original_execution = StateTaskService._eval_execution

    def eval_execution(self: Any, env: Any) -> None:
        token = env.states.context_object.context_object_data.get("Task", {}).get("Token")
        endpoint = env.callback_pool_manager.get(token) if token else None
        if endpoint is not None:  # a new attempt: forget the answer to the previous one
            endpoint._outcome = None
            endpoint._notify_event.clear()
        original_execution(self, env)

    original_setup = CallbackEndpoint.setup_heartbeat_endpoint

    def setup_heartbeat_endpoint(self: Any, heartbeat_seconds: int) -> Any:
        endpoint = original_setup(self, heartbeat_seconds)
        if self.get_outcome() is not None:
            endpoint.notify()  # answered already: wake the wait at once, it then reads the answer
        return endpoint

    StateTaskService._eval_execution = eval_execution  # type: ignore[method-assign]
    CallbackEndpoint.setup_heartbeat_endpoint = setup_heartbeat_endpoint  # type: ignore[method-assign]


def _inject_faults(spec: str) -> None:
    """Answer the requests the faults name with their errors (tests and bench/faults.py only)."""
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication

    from flowdeck.local import faults

    DomainDispatcherApplication.__call__ = faults.inject(  # type: ignore[method-assign,assignment]
        DomainDispatcherApplication.__call__, faults.parse(spec)
    )


# Request threads: each long poll (SQS receive, a stream read) holds one while it waits.
WAITRESS_THREADS = 128


def _http_server(host: str, port: int) -> Any:
    """moto's app behind waitress, which keeps connections alive.

    moto's own server (werkzeug's development server) answers every request with `Connection:
    close`, so each AWS call of a worker, the API or the executor paid a new TCP connection and a
    new server thread.
    """
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app
    from waitress import create_server

    logging.getLogger("waitress").setLevel(logging.ERROR)  # not a warning per queued request
    return create_server(
        DomainDispatcherApplication(create_backend_app),
        host=host,
        port=port,
        threads=WAITRESS_THREADS,
        connection_limit=1000,
        channel_timeout=300,
        ident="flowdeck-emulator",
    )


def serve(host: str, port: int) -> None:
    # The executor calls SQS and DynamoDB at localhost:$MOTO_PORT: it must be this server.
    os.environ["MOTO_PORT"] = str(port)
    from moto.core.config import default_user_config

    default_user_config["stepfunctions"]["execute_state_machine"] = True
    _speed_up_the_executor()
    _speed_up_routing()
    _speed_up_dynamodb_values()
    _parse_update_expressions_once()
    _project_top_level_attributes_directly()
    _forget_used_shard_iterators()
    _long_poll_streams()
    _transactions_check_then_write()
    _atomic_item_writes()
    _answers_per_attempt()
    # Fresh steps: RunTask starts the step's runner as a local process, StopTask signals it.
    from flowdeck.local.ecs_tasks import install_ecs_tasks

    install_ecs_tasks()
    if os.environ.get("FLOWDECK_EMULATOR_COUNT") == "1":  # opt-in request counter (bench/aws_cost.py)
        from flowdeck.local.metering import install_emulator_counter

        install_emulator_counter()
    from flowdeck.local.faults import ENV_FAULTS

    if faults := os.environ.get(ENV_FAULTS):  # opt-in injected faults (LocalStack(faults=...))
        _inject_faults(faults)
    server = _http_server(host, port)
    threading.Thread(target=server.run, daemon=True, name="emulator-server").start()
    stopped = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopped.set())
    signal.signal(signal.SIGINT, lambda *_: stopped.set())
    if parent := os.environ.get("FLOWDECK_EXIT_WITH_PARENT"):
        threading.Thread(target=_stop_with_parent, args=(int(parent), stopped), daemon=True).start()
    print(f"emulator ready on {host}:{port}", flush=True)
    stopped.wait()
    # No graceful close: it waits up to 5 s for long polls in flight; the process ends here anyway.


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
