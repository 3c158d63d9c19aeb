"""The runs table's cleanup record: the claim, its heartbeat and entries, and a lost holder's end."""

from __future__ import annotations

from typing import Any

from flowdeck.constants import PK, RUN_SK, SK
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import to_attribute
from flowdeck.stores.runs import RunStore


class CleanupRecords:
    """Conditional writes of a run's cleanup fields; each answers whether its condition held."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def claim(self, run_id: str, now: str) -> bool:
        """cleanup_status pending -> running (started and beating `now`); False when claimed already."""
        with conditional() as write:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._key(run_id),
                UpdateExpression=(
                    "SET cleanup_status = :running, cleanup_started_at = :now, cleanup_heartbeat_at = :now"
                ),
                ConditionExpression="cleanup_status = :pending",
                ExpressionAttributeValues={
                    ":running": {"S": "running"},
                    ":pending": {"S": "pending"},
                    ":now": {"S": now},
                },
            )
        return write.held

    def record_lost(self, run_id: str, entries: list[dict[str, Any]], why: str, now: str, beat: str) -> bool:
        """Record the cleanup failed with `entries`, only over the claim last seen beating at `beat`."""
        with conditional() as write:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._key(run_id),
                UpdateExpression=(
                    "SET cleanup_status = :failed, #cleanup = :entries, cleanup_error = :why, "
                    "cleanup_ended_at = :now"
                ),
                # Only over the very claim seen silent: a beat meanwhile means its worker lives.
                ConditionExpression=(
                    "cleanup_status = :running AND "
                    "(cleanup_heartbeat_at = :beat OR attribute_not_exists(cleanup_heartbeat_at))"
                ),
                ExpressionAttributeNames={"#cleanup": "cleanup"},
                ExpressionAttributeValues={
                    ":failed": {"S": "failed"},
                    ":running": {"S": "running"},
                    ":entries": to_attribute(entries),
                    ":why": {"S": why},
                    ":now": {"S": now},
                    ":beat": {"S": beat},
                },
            )
        return write.held

    def update_while_held(
        self, run_id: str, expression: str, names: dict[str, str], values: dict[str, Any]
    ) -> bool:
        """One write to the run item, only while its cleanup is `running`; False when it no longer is."""
        kwargs: dict[str, Any] = {
            "TableName": self.runs.table,
            "Key": self._key(run_id),
            "UpdateExpression": expression,
            "ConditionExpression": "cleanup_status = :holding",
            "ExpressionAttributeValues": values | {":holding": {"S": "running"}},
        }
        if names:
            kwargs["ExpressionAttributeNames"] = names
        with conditional() as write:
            self.runs.client.update_item(**kwargs)
        return write.held

    @staticmethod
    def _key(run_id: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": RUN_SK}}
