"""The runs table's cancel records: the request, its escalation, waiting steps ended, the settled run.

Every write is conditional: the rules (which statuses a cancel may leave, when it settles) are the
caller's (flowdeck.control.cancelling); here they become the conditions that make each write once.
"""

from __future__ import annotations

from typing import Any

from flowdeck.constants import PK, RUN_SK, SK, STEP_SK_PREFIX
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import from_item
from flowdeck.stores.runs import RunStore
from flowdeck.stores.schema import CANCEL_REQUESTED_AT, WORKFLOW_STATUS, workflow_status


def _one_of(statuses: tuple[str, ...], prefix: str) -> tuple[str, dict[str, Any]]:
    """`(:s0, :s1, ...)` for an IN condition and the values it names."""
    values = {f":{prefix}{i}": {"S": status} for i, status in enumerate(statuses)}
    return "(" + ", ".join(values) + ")", values


class CancelRecords:
    """Cancel writes on a run's items; each answers whether its condition held."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def run(self, run_id: str) -> dict[str, Any] | None:
        """The run item, read consistently, or None."""
        answer = self.runs.client.get_item(
            TableName=self.runs.table, Key=self._run_key(run_id), ConsistentRead=True
        )
        item = answer.get("Item")
        return from_item(item) if item else None

    def request(
        self,
        run_id: str,
        fields: dict[str, str],
        extra: dict[str, Any],
        under_way: tuple[str, ...],
    ) -> dict[str, Any] | None:
        """Write the request's `fields` and `extra` if under way and not asked yet; the run after, or None."""
        # `extra`: attribute names -> DynamoDB values written with it (the cleanup, the budget's error).
        names = {"#status": "status", "#at": CANCEL_REQUESTED_AT}
        values: dict[str, Any] = {":at": {"S": fields[CANCEL_REQUESTED_AT]}}
        sets = ["#at = :at"]
        for index, (name, value) in enumerate(fields.items()):
            if name != CANCEL_REQUESTED_AT:
                names[f"#c{index}"] = name
                values[f":c{index}"] = {"S": value}
                sets.append(f"#c{index} = :c{index}")
        for index, (name, value) in enumerate(extra.items()):
            names[f"#x{index}"] = name
            values[f":x{index}"] = value
            sets.append(f"#x{index} = :x{index}")
        allowed, statuses = _one_of(under_way, "s")
        with conditional() as write:
            answer = self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._run_key(run_id),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression=f"#status IN {allowed} AND attribute_not_exists(#at)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values | statuses,
                ReturnValues="ALL_NEW",
            )
        return from_item(answer.get("Attributes", {})) if write.held else None

    def escalate(self, run_id: str, by: str, at: str, under_way: tuple[str, ...]) -> bool:
        """A cancel under way (not force yet) becomes force; False if there is none such."""
        allowed, statuses = _one_of(under_way, "s")
        values: dict[str, Any] = {":force": {"S": "force"}, ":now": {"S": at}, ":by": {"S": by}}
        with conditional() as write:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._run_key(run_id),
                UpdateExpression=(
                    "SET cancel_mode = :force, cancel_escalated_at = :now, cancel_escalated_by = :by"
                ),
                ConditionExpression=(
                    f"#status IN {allowed} AND attribute_exists(#at) AND cancel_mode <> :force"
                ),
                ExpressionAttributeNames={"#status": "status", "#at": CANCEL_REQUESTED_AT},
                ExpressionAttributeValues=values | statuses,
            )
        return write.held

    def end_waiting_step(
        self, run_id: str, step_id: str, status: str, error: str, cause: str, at: str
    ) -> bool:
        """Record a still-waiting step ended with `status`; a step no longer waiting keeps its record."""
        with conditional() as write:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key={PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step_id}},
                UpdateExpression="SET #status = :ended, #error = :error, #cause = :cause, ended_at = :now",
                ConditionExpression="#status = :waiting",
                ExpressionAttributeNames={"#status": "status", "#error": "error", "#cause": "cause"},
                ExpressionAttributeValues={
                    ":ended": {"S": status},
                    ":waiting": {"S": "waiting"},
                    ":error": {"S": error},
                    ":cause": {"S": cause},
                    ":now": {"S": at},
                },
            )
        return write.held

    def settle(
        self,
        run_id: str,
        workflow: str,
        status: str,
        at: str,
        under_way: tuple[str, ...],
        cleanup_open: tuple[str, str],
    ) -> bool:
        """Record the run `status` (ended `at`) if its cancel is under way and no cleanup is open."""
        allowed, statuses = _one_of(under_way, "s")
        values: dict[str, Any] = {
            ":ended": {"S": status},
            ":now": {"S": at},
            ":ws": {"S": workflow_status(workflow, status)},
            ":pending": {"S": cleanup_open[0]},
            ":running": {"S": cleanup_open[1]},
        }
        with conditional() as write:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._run_key(run_id),
                UpdateExpression="SET #status = :ended, ended_at = :now, #ws = :ws",
                ConditionExpression=(
                    f"#status IN {allowed} AND attribute_exists(#at) "
                    "AND (attribute_not_exists(cleanup_status) OR NOT cleanup_status IN (:pending, :running))"
                ),
                ExpressionAttributeNames={
                    "#status": "status",
                    "#at": CANCEL_REQUESTED_AT,
                    "#ws": WORKFLOW_STATUS,
                },
                ExpressionAttributeValues=values | statuses,
            )
        return write.held

    def cleanup_not_queued(self, run_id: str, why: str) -> None:
        """A pending cleanup whose message could not be sent is recorded failed (shown, not waited for)."""
        self.runs.client.update_item(
            TableName=self.runs.table,
            Key=self._run_key(run_id),
            UpdateExpression="SET cleanup_status = :failed, cleanup_error = :why",
            ConditionExpression="cleanup_status = :pending",
            ExpressionAttributeValues={
                ":failed": {"S": "failed"},
                ":pending": {"S": "pending"},
                ":why": {"S": why},
            },
        )

    @staticmethod
    def _run_key(run_id: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": RUN_SK}}
