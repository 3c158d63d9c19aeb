"""The runs table's workflow state items (pk `WORKFLOW#<wf>`, sk `STATE`): paused or active.

None of the attribute names the history's sparse indexes key on is written here, so the items stay
out of them. No item means active.
"""

from __future__ import annotations

from typing import Any, Final

from flowdeck.constants import PK, SK
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import from_item
from flowdeck.stores.runs import RunStore

STATE_PK_PREFIX: Final = "WORKFLOW#"
STATE_SK: Final = "STATE"
# BatchGetItem reads at most this many keys per call.
BATCH: Final = 100
PAUSE_FIELDS: Final = ("paused_by", "paused_at", "pause_reason")
RESUME_FIELDS: Final = ("resumed_by", "resumed_at", "resume_reason")


class WorkflowStateItems:
    """Reads (strongly consistent: a pause holds from its answer on) and conditional writes."""

    def __init__(self, runs: RunStore) -> None:
        self.client = runs.client
        self.table = runs.table

    @staticmethod
    def key(workflow: str) -> dict[str, Any]:
        return {PK: {"S": STATE_PK_PREFIX + workflow}, SK: {"S": STATE_SK}}

    def get(self, workflow: str) -> dict[str, Any] | None:
        """The workflow's state item, or None (active)."""
        answer = self.client.get_item(TableName=self.table, Key=self.key(workflow), ConsistentRead=True)
        return from_item(answer["Item"]) if "Item" in answer else None

    def many(self, workflows: list[str]) -> dict[str, dict[str, Any]]:
        """The state items of those of `workflows` that have one (100 keys a call; unprocessed read again)."""
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(workflows), BATCH):
            keys: list[dict[str, Any]] = [self.key(w) for w in workflows[start : start + BATCH]]
            while keys:
                answer = self.client.batch_get_item(
                    RequestItems={self.table: {"Keys": keys, "ConsistentRead": True}}
                )
                for raw in answer.get("Responses", {}).get(self.table, []):
                    item = from_item(raw)
                    found[str(item[PK]).removeprefix(STATE_PK_PREFIX)] = item
                keys = answer.get("UnprocessedKeys", {}).get(self.table, {}).get("Keys", [])
        return found

    def set_active(self, workflow: str, active: bool, by: str, at: str, reason: str | None) -> bool:
        """Pause or resume (who, when, why); False when it was so already."""
        # A repeated pause writes nothing: the first pause's who, when and why stay.
        values: dict[str, Any] = {
            ":by": {"S": by},
            ":now": {"S": at},
            ":true": {"BOOL": True},
            ":false": {"BOOL": False},
        }
        mine, other = (RESUME_FIELDS, PAUSE_FIELDS) if active else (PAUSE_FIELDS, RESUME_FIELDS)
        sets = ["#active = :true" if active else "#active = :false", f"{mine[0]} = :by", f"{mine[1]} = :now"]
        removes = list(other)
        if reason:
            sets.append(f"{mine[2]} = :why")
            values[":why"] = {"S": reason}
        else:
            removes.append(mine[2])
        condition = "#active = :false" if active else "attribute_not_exists(#active) OR #active = :true"
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self.key(workflow),
                UpdateExpression=f"SET {', '.join(sets)} REMOVE {', '.join(removes)}",
                ConditionExpression=condition,
                ExpressionAttributeNames={"#active": "active"},
                ExpressionAttributeValues=values,
            )
        return write.held
