"""Trigger history: every delivery a workflow received and what it started, or why it was refused.

Table `flowdeck-deliveries` (its own table: the runs table's sparse indexes key on attribute names
such as `workflow` and `trigger`, so these items would leak into them). Item: `workflow` (S, pk),
`delivery` `<received_at ISO>#<delivery id>` (S, sk: newest last), `trigger` (webhook | git | schedule |
event | incident), `delivery_id`, `outcome` (started | duplicate | refused | ignored), optional `run_id`,
`reason`, `status_code`, `source`, and `expires_at` (TTL, 30 days). A delivery id's first arrival
is claimed by one conditional put under workflow `claim#<workflow>` (see `claim`). A record is one
unconditional put, and a replayed delivery is recorded again (as `duplicate`): the troubleshooting
view shows every arrival. Runs that Scheduler and EventBridge start directly are recorded by a
run-events reaction (flowdeck.triggers.deliveries.record_trigger_starts) under a key taken from the
run, with a conditional put (`once`), so a redelivered stream record writes its row once.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Final

from flowdeck import aws
from flowdeck.constants import TTL_ATTRIBUTE
from flowdeck.stores.conditions import conditional
from flowdeck.stores.schema import DELIVERY_KEY_ATTRIBUTES

RETENTION_SECONDS: Final = 30 * 24 * 3600
TRIGGER_KINDS: Final = ("webhook", "git", "schedule", "event", "incident")
OUTCOMES: Final = ("started", "duplicate", "refused", "ignored")
PK, SK = list(DELIVERY_KEY_ATTRIBUTES)  # workflow, delivery
# Delivery id claims (which delivery was seen first) share the table under their own partition keys.
CLAIM_PREFIX: Final = "claim#"
# When each delivery id was first seen: the time its run id starts with (flowdeck.triggers.run_ids).
SEEN_PREFIX: Final = "seen#"
# Timestamped webhook signatures accepted, each with the delivery id it came with (replay guard).
SIGNATURE_PREFIX: Final = "sig#"
# A refusal's reason and source come from callers (headers, bodies): bounded so an item stays small.
MAX_TEXT = 500


def _text(value: str | None) -> str | None:
    return None if value is None else value[:MAX_TEXT]


def _timestamp(moment: datetime) -> str:
    """The history's time format: UTC, milliseconds, `Z` (sorts as text)."""
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Deliveries:
    """Records deliveries per workflow and reads back the most recent ones."""

    def __init__(self, table_name: str, client: Any = None) -> None:
        self.table_name = table_name
        self._client = client

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("dynamodb")
        return self._client

    def record(
        self,
        workflow: str,
        trigger: str,
        delivery_id: str,
        outcome: str,
        *,
        run_id: str | None = None,
        reason: str | None = None,
        status_code: int | None = None,
        source: str | None = None,
        received_at: datetime | None = None,
        once: bool = False,
    ) -> bool:
        """Store one delivery of `trigger` to `workflow` and its outcome; False if `once` found it stored.

        `received_at` (default now) is part of the row's key: with a time taken from the delivery
        itself and `once`, a repeated record is one conditional put that writes nothing.
        """
        if trigger not in TRIGGER_KINDS:
            raise ValueError(f"unknown trigger kind {trigger!r}")
        if outcome not in OUTCOMES:
            raise ValueError(f"unknown delivery outcome {outcome!r}")
        received_at_text = _timestamp(received_at or datetime.now(UTC))
        item: dict[str, Any] = {
            PK: {"S": workflow},
            SK: {"S": f"{received_at_text}#{delivery_id}"},
            "received_at": {"S": received_at_text},
            "trigger": {"S": trigger},
            "delivery_id": {"S": _text(delivery_id) or ""},
            "outcome": {"S": outcome},
            TTL_ATTRIBUTE: {"N": str(int(time.time()) + RETENTION_SECONDS)},
        }
        for name, value in (("run_id", run_id), ("reason", _text(reason)), ("source", _text(source))):
            if value:
                item[name] = {"S": value}
        if status_code is not None:
            item["status_code"] = {"N": str(status_code)}
        if not once:
            self.client.put_item(TableName=self.table_name, Item=item)
            return True
        with conditional() as write:
            self.client.put_item(
                TableName=self.table_name,
                Item=item,
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        return write.held

    def claim(self, workflow: str, trigger: str, delivery_id: str) -> bool:
        """True for the first claim of a delivery id, False for a repeat (one conditional put).

        Step Functions alone cannot tell: StartExecution with a running execution's name and input
        succeeds again. Claims live under workflow `claim#<workflow>`, apart from what `recent` reads.
        """
        with conditional() as write:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    PK: {"S": f"{CLAIM_PREFIX}{workflow}"},
                    SK: {"S": f"{trigger}#{delivery_id}"},
                    TTL_ATTRIBUTE: {"N": str(int(time.time()) + RETENTION_SECONDS)},
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        return write.held

    def claim_signature(self, workflow: str, signature: str, delivery_id: str, expires_at: int) -> bool:
        """True when `signature` is new, or was claimed before by the same delivery id (a sender's retry);
        False when another delivery id claimed it (a replay). One conditional put under `sig#<workflow>`."""
        with conditional() as write:
            self.client.put_item(
                TableName=self.table_name,
                Item={
                    PK: {"S": f"{SIGNATURE_PREFIX}{workflow}"},
                    SK: {"S": signature},
                    "delivery_id": {"S": delivery_id},
                    TTL_ATTRIBUTE: {"N": str(expires_at)},
                },
                ConditionExpression="attribute_not_exists(#pk) OR delivery_id = :delivery",
                ExpressionAttributeNames={"#pk": PK},
                ExpressionAttributeValues={":delivery": {"S": delivery_id}},
            )
        return write.held

    def first_seen(
        self, workflow: str, trigger: str, delivery_id: str, now: datetime | None = None
    ) -> datetime:
        """When this delivery id was first seen: `now` the first time, the stored time ever after.

        One UpdateItem (`if_not_exists`), so concurrent and repeated deliveries agree; under
        `seen#<workflow>`, apart from claims (unset until a start succeeded) and from what `recent` reads.
        """
        moment = _timestamp(now or datetime.now(UTC))
        answer = self.client.update_item(
            TableName=self.table_name,
            Key={PK: {"S": f"{SEEN_PREFIX}{workflow}"}, SK: {"S": f"{trigger}#{delivery_id}"}},
            UpdateExpression="SET first_seen = if_not_exists(first_seen, :now), "
            "#ttl = if_not_exists(#ttl, :ttl)",
            ExpressionAttributeNames={"#ttl": TTL_ATTRIBUTE},
            ExpressionAttributeValues={
                ":now": {"S": moment},
                ":ttl": {"N": str(int(time.time()) + RETENTION_SECONDS)},
            },
            ReturnValues="ALL_NEW",
        )
        return datetime.fromisoformat(answer["Attributes"]["first_seen"]["S"].replace("Z", "+00:00"))

    def recent(self, workflow: str, limit: int = 50) -> list[dict]:
        """The workflow's latest deliveries, newest first, as plain dicts."""
        answer = self.client.query(
            TableName=self.table_name,
            KeyConditionExpression="#pk = :wf",
            ExpressionAttributeNames={"#pk": PK},
            ExpressionAttributeValues={":wf": {"S": workflow}},
            ScanIndexForward=False,
            Limit=max(1, min(limit, 1000)),
        )
        return [_plain(item) for item in answer.get("Items", [])]


def _plain(item: dict[str, Any]) -> dict[str, Any]:
    """A deliveries item as the API shows it."""
    out: dict[str, Any] = {"workflow": item[PK]["S"]}
    for name in ("received_at", "trigger", "delivery_id", "outcome", "run_id", "reason", "source"):
        if name in item:
            out[name] = item[name]["S"]
    if "status_code" in item:
        out["status_code"] = int(item["status_code"]["N"])
    return out
