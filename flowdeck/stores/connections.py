"""The connections table: one item per WebSocket connection, with its subscription and send lease.

The lease, the pending flag and last_seq are what make the live view's delivery exactly once and in
order (flowdeck.live.service); each write here is conditional and answers whether it held.
"""

from __future__ import annotations

import secrets
import time
from typing import Any

from flowdeck import aws
from flowdeck.constants import TTL_ATTRIBUTE
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import from_item, query_all
from flowdeck.stores.schema import CONNECTIONS_BY_RUN_INDEX

# API Gateway cuts a connection after 2 h; its item expires then too.
CONNECTION_TTL_SECONDS = 2 * 3600
# A sender that died holding the lease blocks a connection at most this long.
LEASE_SECONDS = 30


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
        # A new subscription ends any sender's lease: its conditional writes now fail on run/gen.
        with conditional() as write:
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
        return write.held

    def subscribers(self, run_id: str) -> list[dict[str, Any]]:
        """Connections subscribed to the run (the by-run index)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": CONNECTIONS_BY_RUN_INDEX,
            "KeyConditionExpression": "run_id = :run",
            "ExpressionAttributeValues": {":run": {"S": run_id}},
        }
        return query_all(self.client, kwargs)

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
        with conditional() as write:
            answer = self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression=update,
                ConditionExpression=condition,
                ExpressionAttributeValues=values,
                ReturnValues="ALL_NEW",
            )
        return from_item(answer["Attributes"]) if write.held else None

    def abandon(self, connection_id: str, sender: str) -> None:
        """Let the next sender take the lease at once (after a failure), keeping `pending` as it is."""
        with conditional():
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET lease_until = :zero",
                ConditionExpression="sender = :me",
                ExpressionAttributeValues={":zero": {"N": "0"}, ":me": {"S": sender}},
            )

    def mark_pending(self, connection_id: str, run_id: str) -> bool:
        """Tell the lease holder there is more to read; False if the connection left the run."""
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._key(connection_id),
                UpdateExpression="SET pending = :true",
                ConditionExpression="run_id = :run",
                ExpressionAttributeValues={":true": {"BOOL": True}, ":run": {"S": run_id}},
            )
        return write.held

    def claim(self, connection_id: str, sender: str, gen: str, previous: int, seq: int) -> bool:
        """Advance last_seq from `previous` to `seq` under our lease; only the winner posts them."""
        with conditional() as write:
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
        return write.held

    def release(self, connection_id: str, sender: str) -> bool:
        """Give the lease back and go live; False if `pending` was set meanwhile (read again first)."""
        with conditional() as write:
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
        return write.held
