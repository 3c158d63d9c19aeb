"""The runs table's owed task answers: the answer a decision owes, kept on its step until sent."""

from __future__ import annotations

from typing import Any

from flowdeck.constants import PK, SK, STEP_SK_PREFIX
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import from_item
from flowdeck.stores.runs import RunStore

OWED_ANSWER = "owed_answer"
PAYING_SINCE = "owed_answer_paying_at"
# The token of the last answer sent (read by an API that found its token answered).
ANSWERED_TOKEN = "answered_token"  # noqa: S105 - an attribute name, not a secret


class OwedAnswerRecords:
    """Marks, forgets and reads the owed answer of a step (each write conditional on that very answer)."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def mark_paying(self, run_id: str, step: str, encoded: str, now: str) -> bool:
        """Note that `encoded` is being sent; False when the step owes another answer (or none)."""
        with conditional() as mark:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._key(run_id, step),
                UpdateExpression="SET #paying = :now",
                ConditionExpression="#owed = :owed",
                ExpressionAttributeNames={"#paying": PAYING_SINCE, "#owed": OWED_ANSWER},
                ExpressionAttributeValues={":now": {"S": now}, ":owed": {"S": encoded}},
            )
        return mark.held

    def forget(self, run_id: str, step: str, encoded: str, answered_token: str | None) -> None:
        """Drop the owed answer `encoded` (noting the token answered, if any); a newer one stays."""
        names = {"#owed": OWED_ANSWER, "#paying": PAYING_SINCE}
        values = {":owed": {"S": encoded}}
        update = "REMOVE #owed, #paying"
        if answered_token is not None:
            update = "SET #answered = :token " + update
            names["#answered"] = ANSWERED_TOKEN
            values[":token"] = {"S": answered_token}
        with conditional():
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._key(run_id, step),
                UpdateExpression=update,
                ConditionExpression="#owed = :owed",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def step(self, run_id: str, step: str) -> dict[str, Any]:
        """The step's item, read consistently (empty when there is none)."""
        answer = self.runs.client.get_item(
            TableName=self.runs.table, Key=self._key(run_id, step), ConsistentRead=True
        )
        return from_item(answer.get("Item", {}))

    @staticmethod
    def _key(run_id: str, step: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step}}
