"""Live view (SPEC §4): WebSocket subscriptions, replay-then-live log delivery and status fan-out.

Delivery to one connection is exactly once and in order. Every sender (the `subscribe` replay and the
stream fan-out, possibly several at once) goes through `LiveService.pump`, which holds a short
per-connection send lease on the connection item:

- the lease holder reads `batches_after(run_id, last_seq)`, and for each batch first advances
  `last_seq` from seq-1 to seq (conditional write), then posts it: no seq is claimed twice;
- a sender that finds the lease taken sets `pending` on the item; the holder releases only if
  `pending` is unset, else it clears it and reads again. So a batch stored while another sender
  holds the lease is picked up by that holder, never dropped, and posts never overtake each other.

Log frames keep the log store's seq; a batch whose frame would exceed the 32 KB API Gateway limit is
split into several frames with the same seq and `part`/`parts` fields (1-based). Run and step status
frames carry no seq: they are state, and the snapshot sent on subscribe covers what was missed.
"""

from __future__ import annotations

import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from flowdeck import aws
from flowdeck.config import get_settings
from flowdeck.constants import RUN_SK, STEP_SK_PREFIX, TTL_ATTRIBUTE
from flowdeck.costs.models import money_text
from flowdeck.errors import RunNotFound
from flowdeck.stores.conditions import condition_failed
from flowdeck.stores.runs import from_item
from flowdeck.stores.schema import CONNECTIONS_BY_RUN_INDEX

# API Gateway's WebSocket frame limit is 32 KB; keep a margin for the JSON envelope's rounding.
MAX_FRAME_BYTES = 32 * 1024 - 512
# A single line longer than this is cut in the live view (the log store keeps it whole).
MAX_LINE_TEXT = 16 * 1024
MAX_ERROR_TEXT = 4 * 1024
# API Gateway cuts a connection after 2 h; its item expires then too.
CONNECTION_TTL_SECONDS = 2 * 3600
# A sender that died holding the lease blocks a connection at most this long.
LEASE_SECONDS = 30
REPLAY_PAGE = 100
ENDED = {"succeeded", "failed", "skipped", "cancelled", "timed_out"}
FANOUT_THREADS = 16

logger = logging.getLogger(__name__)


class Gone(Exception):
    """The WebSocket connection no longer exists (API Gateway's GoneException, HTTP 410)."""


class LogBatches(Protocol):
    """What the live view reads from the log store (flowdeck.stores.logs.LogStore)."""

    def batches_after(
        self, run_id: str, since_seq: int, limit: int | None = None
    ) -> list[dict[str, Any]]: ...


class Runs(Protocol):
    """What the live view reads for the snapshot (flowdeck.service.RunService)."""

    def get_run(self, run_id: str) -> dict[str, Any]: ...


class Subscribe(BaseModel):
    """Body of the `subscribe` action."""

    model_config = ConfigDict(extra="forbid")
    action: str = "subscribe"
    run_id: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_.:-]+$")
    since_seq: int = Field(default=0, ge=0)


# -- frames ---------------------------------------------------------------------------------------
def _dump(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _cut(text: Any, limit: int) -> Any:
    return text[:limit] + "…" if isinstance(text, str) and len(text) > limit else text


def log_frames(run_id: str, batch: dict[str, Any]) -> list[bytes]:
    """One log batch as frames under MAX_FRAME_BYTES: one frame, or parts sharing the batch's seq."""
    base = {"type": "log", "run_id": run_id, "step": batch["step"], "seq": int(batch["seq"])}
    lines = []
    for line in batch["lines"]:
        text = line.get("text", "")
        cut = _cut(text, MAX_LINE_TEXT)
        lines.append({**line, "text": cut, "truncated": True} if cut is not text else line)
    whole = _dump(base | {"lines": lines})
    if len(whole) <= MAX_FRAME_BYTES:
        return [whole]
    overhead = len(_dump(base | {"lines": [], "part": 99999, "parts": 99999}))
    groups: list[list[dict[str, Any]]] = [[]]
    size = overhead
    for line in lines:
        line_size = len(_dump(line)) + 1
        if groups[-1] and size + line_size > MAX_FRAME_BYTES:
            groups.append([])
            size = overhead
        groups[-1].append(line)
        size += line_size
    return [
        _dump(base | {"lines": group, "part": index, "parts": len(groups)})
        for index, group in enumerate(groups, start=1)
    ]


def run_message(run_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """`{"type": "run"}` from a run item or a run view."""
    return {
        "type": "run",
        "run_id": run_id,
        "workflow": item.get("workflow"),
        "status": item.get("status"),
        "started_at": item.get("started_at"),
        "ended_at": item.get("ended_at"),
        "error": _cut(item.get("error"), MAX_ERROR_TEXT),
        # A decimal string, as in every answer (flowdeck.costs.models.Money).
        "cost_usd": money_text(item.get("cost_usd")) or "0",
        # A cancel under way (the run keeps its status until its last process ended): viewers say so.
        **(
            {"cancel_requested_at": item["cancel_requested_at"], "cancel_mode": item.get("cancel_mode")}
            if item.get("cancel_requested_at")
            else {}
        ),
    }


def step_message(run_id: str, step_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """`{"type": "step"}` from a step item or a step view."""
    return {
        "type": "step",
        "run_id": run_id,
        "step": step_id,
        "status": item.get("status", "pending"),
        "attempt": item.get("attempt", 0),
        "started_at": item.get("started_at"),
        "ended_at": item.get("ended_at"),
        "error": _cut(item.get("error"), MAX_ERROR_TEXT),
        "summary": _cut(item.get("summary"), MAX_ERROR_TEXT),
        "cost_usd": money_text(item.get("cost_usd")),
        # Paused on failure: since when and until when it waits (never its token).
        **(
            {
                "waiting_since": item.get("waiting_since"),
                "wait_deadline": item.get("wait_deadline"),
                "allow_skip": bool(item.get("allow_skip")),
            }
            if item.get("status") == "waiting"
            else {}
        ),
        # An approval step: who may decide, how many so far, until when (flowdeck.approvals).
        **approval_message(item),
    }


def approval_message(item: dict[str, Any]) -> dict[str, Any]:
    """The approval's state for viewers (a step item's `approval` map, or a step view's)."""
    approval = item.get("approval")
    if not isinstance(approval, dict):
        return {}
    keep = ("message", "approvers", "min_approvals", "approvals", "deadline", "approved_by", "rejected_by")
    return {"approval": {k: approval[k] for k in keep if k in approval}}


def status_message(keys: dict[str, Any], image: dict[str, Any] | None) -> dict[str, Any] | None:
    """A runs-table item (plain values) as a run or step message; None for other items."""
    if not image:
        return None
    run_id, sort_key = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if sort_key == RUN_SK:
        return run_message(run_id, image)
    if sort_key.startswith(STEP_SK_PREFIX):
        return step_message(run_id, sort_key.removeprefix(STEP_SK_PREFIX), image)
    return None


def snapshot_messages(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run view (RunService.get_run) as one run message and one step message per step."""
    run_id = run["run_id"]
    return [run_message(run_id, run)] + [step_message(run_id, s["id"], s) for s in run.get("steps", [])]


def error_frame(code: str, message: str) -> bytes:
    return _dump({"type": "error", "error": code, "message": message})


# -- adapters -------------------------------------------------------------------------------------
class ConnectionsApi:
    """API Gateway's management API (`@connections`): on AWS, or the local server answering it."""

    def __init__(self, endpoint_url: str, client: Any = None) -> None:
        self.client = client or _management_client(endpoint_url)

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "GoneException":
                raise Gone(connection_id) from None
            raise


def _management_client(endpoint_url: str) -> Any:
    # Not aws.client(): the management API lives at the WebSocket API's own endpoint, not the emulator's.
    return boto3.client(
        "apigatewaymanagementapi",
        region_name=get_settings().region,
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10),
    )


class Connections:
    """The connections table: one item per WebSocket connection, with its subscription and send state."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table = table_name
        self.client = client or aws.client("dynamodb")

    def _key(self, connection_id: str) -> dict[str, Any]:
        return {"connection_id": {"S": connection_id}}

    def add(self, connection_id: str, user: str, now: float | None = None) -> None:
        expires = int((now or time.time()) + CONNECTION_TTL_SECONDS)
        self.client.put_item(
            TableName=self.table,
            Item={
                "connection_id": {"S": connection_id},
                "user": {"S": user},
                "last_seq": {"N": "0"},
                TTL_ATTRIBUTE: {"N": str(expires)},
            },
        )

    def remove(self, connection_id: str) -> None:
        self.client.delete_item(TableName=self.table, Key=self._key(connection_id))

    def get(self, connection_id: str) -> dict[str, Any] | None:
        answer = self.client.get_item(TableName=self.table, Key=self._key(connection_id), ConsistentRead=True)
        return from_item(answer["Item"]) if "Item" in answer else None

    def subscribe(self, connection_id: str, run_id: str, since_seq: int, now: float | None = None) -> bool:
        """Point the connection at a run from `since_seq`; False if the connection is gone."""
        expires = int((now or time.time()) + CONNECTION_TTL_SECONDS)
        try:
            # A new subscription ends any sender's lease: its conditional writes now fail on run/gen.
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression=(
                    "SET run_id = :run, last_seq = :seq, #state = :replaying, #ttl = :ttl, gen = :gen "
                    "REMOVE sender, lease_until, pending"
                ),
                ConditionExpression="attribute_exists(connection_id)",
                ExpressionAttributeNames={"#state": "state", "#ttl": TTL_ATTRIBUTE},
                ExpressionAttributeValues={
                    ":run": {"S": run_id},
                    ":seq": {"N": str(since_seq)},
                    ":replaying": {"S": "replaying"},
                    ":ttl": {"N": str(expires)},
                    ":gen": {"S": secrets.token_hex(8)},
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def subscribers(self, run_id: str) -> list[dict[str, Any]]:
        """Connections subscribed to the run (the by-run index)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": CONNECTIONS_BY_RUN_INDEX,
            "KeyConditionExpression": "run_id = :run",
            "ExpressionAttributeValues": {":run": {"S": run_id}},
        }
        found: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**kwargs)
            found += [from_item(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return found
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    # -- the send lease ---------------------------------------------------------------------------
    def acquire(
        self, connection_id: str, run_id: str, sender: str, now: float, claim: tuple[int, int] | None = None
    ) -> dict[str, Any] | None:
        """Take the send lease (clearing `pending`); the item, or None if another sender holds it.

        With `claim` (first, last), also advance last_seq from first-1 to last in the same write (the
        fan-out's common case: the stream brings the next batches), or fail if last_seq is elsewhere.
        """
        update = "SET sender = :me, lease_until = :until, pending = :false"
        condition = "run_id = :run AND (attribute_not_exists(sender) OR lease_until < :now OR sender = :me)"
        values: dict[str, Any] = {
            ":me": {"S": sender},
            ":until": {"N": str(now + LEASE_SECONDS)},
            ":now": {"N": str(now)},
            ":run": {"S": run_id},
            ":false": {"BOOL": False},
        }
        if claim is not None:
            update += ", last_seq = :seq"
            condition += " AND last_seq = :previous"
            values |= {":seq": {"N": str(claim[1])}, ":previous": {"N": str(claim[0] - 1)}}
        try:
            answer = self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        except ClientError as exc:
            if condition_failed(exc):
                return None
            raise
        return from_item(answer["Attributes"])

    def abandon(self, connection_id: str, sender: str) -> None:
        """Let the next sender take the lease at once (after a failure), keeping `pending` as it is."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="sender = :me",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":me": {"S": sender}},
            )
        except ClientError as exc:
            if not condition_failed(exc):
                raise

    def mark_pending(self, connection_id: str, run_id: str) -> bool:
        """Tell the lease holder there is more to read; False if the connection left the run."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET pending = :true",
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":true": {"BOOL": True}, ":run": {"S": run_id}},
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def claim(self, connection_id: str, sender: str, gen: str, previous: int, seq: int) -> bool:
        """Advance last_seq from `previous` to `seq` under our lease; only the winner posts them."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET last_seq = :seq",
                ConditionExpression="sender = :me AND gen = :gen AND last_seq = :previous",
                ExpressionAttributeValues={
                    ":seq": {"N": str(seq)},
                    ":previous": {"N": str(previous)},
                    ":me": {"S": sender},
                    ":gen": {"S": gen},
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True

    def release(self, connection_id: str, sender: str) -> bool:
        """Give the lease back and go live; False if `pending` was set meanwhile (read again first)."""
        try:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET #state = :live REMOVE sender, lease_until",
                ConditionExpression="sender = :me AND pending = :false",
                ExpressionAttributeNames={"#state": "state"},
                ExpressionAttributeValues={
                    ":me": {"S": sender},
                    ":false": {"BOOL": False},
                    ":live": {"S": "live"},
                },
            )
        except ClientError as exc:
            if condition_failed(exc):
                return False
            raise
        return True


def _contiguous(batches: dict[int, dict[str, Any]], last: int) -> list[dict[str, Any]]:
    """The batches last+1, last+2, ... up to the first missing seq."""
    run = []
    while last + 1 in batches:
        last += 1
        run.append(batches[last])
    return run


# -- the service ----------------------------------------------------------------------------------
class Poster(Protocol):
    def post(self, connection_id: str, data: bytes) -> None: ...


class LiveService:
    """Connect, subscribe (snapshot + replay), and fan out new log batches and status changes."""

    def __init__(
        self,
        connections: Connections,
        logs: LogBatches,
        runs: Runs,
        poster: Poster,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.connections = connections
        self.logs = logs
        self.runs = runs
        self.poster = poster
        self.clock = clock

    # -- connection lifecycle ---------------------------------------------------------------------
    def connect(self, connection_id: str, user: str) -> None:
        self.connections.add(connection_id, user, self.clock())

    def disconnect(self, connection_id: str) -> None:
        self.connections.remove(connection_id)

    def subscribe(self, connection_id: str, body: str | None) -> None:
        """Handle a `subscribe` message: snapshot, then replay after since_seq, then live."""
        try:
            request = Subscribe.model_validate_json(body or "")
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in exc.errors()
            )
            self.send(connection_id, error_frame("BadRequest", problems[:1000]))
            return
        try:
            run = self.runs.get_run(request.run_id)
        except RunNotFound:
            run = None
        if not self.connections.subscribe(connection_id, request.run_id, request.since_seq, self.clock()):
            return
        if run is None:
            # The run may not be recorded yet (just started): stay subscribed; live frames will follow.
            self.send(connection_id, _dump({"type": "run", "run_id": request.run_id, "status": None}))
        else:
            for message in snapshot_messages(run):
                if not self.send(connection_id, _dump(message)):
                    return
        self.pump(connection_id, request.run_id)

    # -- fan-out ----------------------------------------------------------------------------------
    def on_log_batches(self, run_id: str, batches: Iterable[dict[str, Any]]) -> None:
        """New log batches of a run were stored: bring every subscriber up to date."""
        known = {int(b["seq"]): b for b in batches}
        subscribers = self.connections.subscribers(run_id)
        self._each(subscribers, lambda c: self.pump(c["connection_id"], run_id, known))

    def on_status(self, message: dict[str, Any]) -> None:
        """A run or step changed: push the state to every subscriber of the run."""
        frame = _dump(message)
        run_id = message["run_id"]
        # Workers store a step's last lines before its end: a final status also catches subscribers up,
        # in case the by-run index (eventually consistent) missed a fresh subscriber for those lines.
        catch_up = message.get("status") in ENDED

        def push(connection: dict[str, Any]) -> None:
            if self.send(connection["connection_id"], frame) and catch_up:
                self.pump(connection["connection_id"], run_id)

        self._each(self.connections.subscribers(run_id), push)

    def _each(self, connections: list[dict[str, Any]], work: Callable[[dict[str, Any]], object]) -> None:
        if len(connections) <= 1:
            for connection in connections:
                work(connection)
            return
        with ThreadPoolExecutor(max_workers=min(FANOUT_THREADS, len(connections))) as pool:
            for future in [pool.submit(work, c) for c in connections]:
                future.result()

    # -- exactly once, in order -------------------------------------------------------------------
    def pump(self, connection_id: str, run_id: str, known: dict[int, dict[str, Any]] | None = None) -> None:
        """Send the connection every stored batch after its last_seq, once each, in order (see module doc)."""
        sender = secrets.token_hex(8)
        known = known or {}
        item, claimed = None, []
        if known:
            # Fast path: the lease and the stream's next batches in one write; no read of the logs table.
            claimed = _contiguous(known, min(known) - 1)
            span = (int(claimed[0]["seq"]), int(claimed[-1]["seq"]))
            item = self.connections.acquire(connection_id, run_id, sender, self.clock(), claim=span)
        if item is None:
            claimed = []
            item = self.connections.acquire(connection_id, run_id, sender, self.clock())
        if item is None:
            if not self.connections.mark_pending(connection_id, run_id):
                return
            # The holder may have released before seeing `pending`: try once more.
            item = self.connections.acquire(connection_id, run_id, sender, self.clock())
            if item is None:
                return
        gen, last = str(item.get("gen", "")), int(item.get("last_seq", 0))
        try:
            if not all(self._send_batch(connection_id, run_id, batch) for batch in claimed):
                return
            # A batch stored after the stream's has its own record, whose pump (or `pending`) brings it.
            read = not claimed or last < max(known)
            while True:
                while read:
                    page = self.logs.batches_after(run_id, last, REPLAY_PAGE)
                    batches = _contiguous({int(b["seq"]): b for b in page}, last)
                    if not batches:
                        break
                    top = int(batches[-1]["seq"])
                    if not self.connections.claim(connection_id, sender, gen, last, top):
                        return  # re-subscribed meanwhile: that subscription's replay carries on
                    last = top
                    if not all(self._send_batch(connection_id, run_id, batch) for batch in batches):
                        return
                    read = len(page) == REPLAY_PAGE and len(batches) == len(page)
                if self.connections.release(connection_id, sender):
                    return
                # `pending` was set by a sender that found the lease taken: take it again, read again.
                item = self.connections.acquire(connection_id, run_id, sender, self.clock())
                if item is None or str(item.get("gen", "")) != gen:
                    return
                last, read = int(item.get("last_seq", last)), True
        except Exception:
            # Do not block the connection for the lease's length; the caller's retry resends from last_seq.
            self.connections.abandon(connection_id, sender)
            raise

    def _send_batch(self, connection_id: str, run_id: str, batch: dict[str, Any]) -> bool:
        return all(self.send(connection_id, frame) for frame in log_frames(run_id, batch))

    def send(self, connection_id: str, data: bytes) -> bool:
        """Post one frame; a gone connection is deleted and False returned."""
        try:
            self.poster.post(connection_id, data)
        except Gone:
            logger.info("connection %s is gone; removing it", connection_id)
            self.connections.remove(connection_id)
            return False
        return True
