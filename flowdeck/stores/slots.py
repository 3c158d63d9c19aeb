"""The runs table's concurrency items: a limited workflow's slots and its queued runs.

Slots are a set per limited workflow (pk `CONCURRENCY#<wf>`, sk `SLOTS`, attribute `holders`):
adding or removing a run id is idempotent, and the add is conditional on the set's size, so
concurrent starts never exceed the limit (no read-then-write). A queued run is a RUN item with
status queued.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from flowdeck.constants import PK, RUN_SK, SK
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import from_item
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import BY_WORKFLOW_INDEX, GLOBAL_INDEXES, RUN_STARTED_AT, WORKFLOW_STATUS

SLOTS_PK_PREFIX = "CONCURRENCY#"
SLOTS_SK = "SLOTS"
# Names kept off the runs table's sparse index keys (kind, workflow, status, started_at, ...).
HOLDERS = "holders"
LIMIT = "max_runs"
# When a queued run was promoted (kept by RecordRunStart).
PROMOTED_AT = "promoted_at"


class Slot(StrEnum):
    """What an acquire found: the slot is newly taken, or this run already held it."""

    NEW = "new"
    HELD = "held"


def queued_index() -> tuple[str, str, str] | None:
    """(index, hash key, range key) of the history's workflow+status index, if the table has it."""
    for name, (hash_key, range_key) in GLOBAL_INDEXES.items():
        if hash_key == WORKFLOW_STATUS and range_key == "started_at":
            return name, hash_key, range_key
    return None


class SlotStore:
    """Slots taken and freed by conditional writes, and the reads of runs waiting for one."""

    def __init__(self, runs: RunStore) -> None:
        self.client = runs.client
        self.table = runs.table

    @staticmethod
    def slots_key(workflow: str) -> dict[str, Any]:
        return {PK: {"S": SLOTS_PK_PREFIX + workflow}, SK: {"S": SLOTS_SK}}

    def acquire(self, workflow: str, run_id: str, max_runs: int) -> Slot | None:
        """Take a slot for the run (idempotent: a holder keeps its one slot); None at the limit."""
        with conditional() as write:
            answer = self.client.update_item(
                TableName=self.table,
                Key=self.slots_key(workflow),
                UpdateExpression="SET #limit = :max ADD #holders :run",
                ConditionExpression=(
                    "attribute_not_exists(#holders) OR size(#holders) < :max OR contains(#holders, :id)"
                ),
                ExpressionAttributeNames={"#holders": HOLDERS, "#limit": LIMIT},
                ExpressionAttributeValues={
                    ":run": {"SS": [run_id]},
                    ":id": {"S": run_id},
                    ":max": {"N": str(max_runs)},
                },
                # The whole (small) old item: moto leaves an unchanged set out of UPDATED_OLD.
                ReturnValues="ALL_OLD",
            )
        if not write.held:
            return None
        before = answer.get("Attributes", {}).get(HOLDERS, {}).get("SS", [])
        return Slot.HELD if run_id in before else Slot.NEW

    def release(self, workflow: str, run_id: str) -> bool:
        """Free the run's slot (idempotent); False when the workflow has no slots item (unlimited)."""
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self.slots_key(workflow),
                UpdateExpression="DELETE #holders :run",
                # Never create a slots item for a workflow that has none.
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames={"#holders": HOLDERS, "#pk": PK},
                ExpressionAttributeValues={":run": {"SS": [run_id]}},
            )
        return write.held

    def slots(self, workflow: str) -> tuple[set[str], int] | None:
        """(holders, max_runs) of the workflow, None when it has no slots item."""
        answer = self.client.get_item(TableName=self.table, Key=self.slots_key(workflow), ConsistentRead=True)
        if "Item" not in answer:
            return None
        item = from_item(answer["Item"])
        return set(item.get(HOLDERS) or []), int(item.get(LIMIT) or 0)

    def run_item(self, run_id: str) -> dict[str, Any] | None:
        """The run item, read consistently, or None."""
        answer = self.client.get_item(
            TableName=self.table, Key={PK: {"S": run_id}, SK: {"S": RUN_SK}}, ConsistentRead=True
        )
        return from_item(answer["Item"]) if "Item" in answer else None

    def queued_runs(self, workflow: str, queued_status: str, index_key: str) -> list[dict[str, Any]]:
        """The workflow's runs in `queued_status`, oldest first (`index_key`: its workflow+status key)."""
        found = queued_index()
        if found is not None:
            index, hash_key, _ = found
            kwargs: dict[str, Any] = {
                "IndexName": index,
                "KeyConditionExpression": "#k = :k",
                "ExpressionAttributeNames": {"#k": hash_key},
                "ExpressionAttributeValues": {":k": {"S": index_key}},
            }
        else:
            kwargs = {
                "IndexName": BY_WORKFLOW_INDEX,
                "KeyConditionExpression": "#k = :k",
                "FilterExpression": "#status = :queued",
                "ExpressionAttributeNames": {"#k": "workflow", "#status": "status"},
                "ExpressionAttributeValues": {":k": {"S": workflow}, ":queued": {"S": queued_status}},
            }
        kwargs |= {"TableName": self.table, "ScanIndexForward": True}
        runs: list[dict[str, Any]] = []
        while True:
            page = self.client.query(**kwargs)
            runs += [from_item(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                return runs
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def mark_promoted(self, run_id: str, queued: str, running: str, running_key: str, now: str) -> bool:
        """Queued -> running from `now` (start times reset, promoted_at kept); False if not queued."""
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression=(
                    "SET #promoted = if_not_exists(#promoted, :now), #status = :running, #ws = :ws, "
                    "#started = :now, #run_started = :now"
                ),
                ConditionExpression="#status = :queued",
                ExpressionAttributeNames={
                    "#promoted": PROMOTED_AT,
                    "#status": "status",
                    "#ws": WORKFLOW_STATUS,
                    "#started": "started_at",
                    "#run_started": RUN_STARTED_AT,
                },
                ExpressionAttributeValues={
                    ":now": {"S": now},
                    ":queued": {"S": queued},
                    ":running": {"S": running},
                    ":ws": {"S": running_key},
                },
            )
        return write.held
