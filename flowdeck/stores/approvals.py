"""Approval records on the step items of the runs table, and the inbox items (one per approver).

A waiting approval's STEP item: status `waiting`, `wait_token`, the `approval` map (policy, rendered
message, link, deadline, approvals so far) and `approval_version`, which every decision's conditional
write checks and bumps: two decisions at once never lose one (the loser re-reads and tries again).
Inbox items (pk `INBOX#<email>`, sk `<run_id>#<step>`) let `GET /inbox` Query instead of Scan; they
are removed on decision and, lazily, when the inbox finds their step no longer waiting.
"""

from __future__ import annotations

from typing import Any

from flowdeck.constants import PK, SK, STEP_SK_PREFIX
from flowdeck.stores.conditions import conditional
from flowdeck.stores.items import from_item, query_all, to_attribute
from flowdeck.stores.runs import RunStore

INBOX_PREFIX = "INBOX#"


def inbox_key(approver: str, run_id: str, step: str) -> dict[str, Any]:
    return {PK: {"S": INBOX_PREFIX + approver}, SK: {"S": f"{run_id}#{step}"}}


class ApprovalStore:
    """Conditional writes of approval requests and decisions."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs
        self.client = runs.client
        self.table = runs.table

    def _step_key(self, run_id: str, step: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step}}

    def get_step(self, run_id: str, step: str) -> dict[str, Any] | None:
        answer = self.client.get_item(
            TableName=self.table, Key=self._step_key(run_id, step), ConsistentRead=True
        )
        return from_item(answer["Item"]) if "Item" in answer else None

    def record_request(
        self, run_id: str, step: str, token: str, approval: dict[str, Any], since: str
    ) -> bool:
        """The step `waiting` with its request; False when it already waits (or waited) with this token.

        The first delivery writes; a redelivery of the same message finds the token and changes nothing;
        a step already decided (its token removed) or timed out is never reopened.
        """
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step),
                UpdateExpression="SET #step = :step, #status = :waiting, #token = :token, "
                "#approval = :approval, #version = :zero, #started = :since, #kind = :kind",
                ConditionExpression="attribute_not_exists(#status) OR #status = :pending",
                ExpressionAttributeNames={
                    "#step": "step",
                    "#status": "status",
                    "#token": "wait_token",
                    "#approval": "approval",
                    "#version": "approval_version",
                    "#started": "started_at",
                    "#kind": "kind",
                },
                ExpressionAttributeValues={
                    ":step": {"S": step},
                    ":waiting": {"S": "waiting"},
                    ":pending": {"S": "pending"},
                    ":token": {"S": token},
                    ":approval": to_attribute(approval),
                    ":zero": {"N": "0"},
                    ":since": {"S": since},
                    ":kind": {"S": "approval"},
                },
            )
        return write.held

    def note_delivery(self, run_id: str, step: str, token: str, fields: dict[str, Any]) -> bool:
        """Set `approval.<name>` fields (slack ref, delivery errors) while the step waits with `token`."""
        names = {"#status": "status", "#token": "wait_token", "#approval": "approval"}
        values: dict[str, Any] = {":waiting": {"S": "waiting"}, ":token": {"S": token}}
        sets = []
        for index, (name, value) in enumerate(fields.items()):
            names[f"#f{index}"] = name
            values[f":f{index}"] = to_attribute(value)
            sets.append(f"#approval.#f{index} = :f{index}")
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step),
                UpdateExpression="SET " + ", ".join(sets),
                ConditionExpression="#status = :waiting AND #token = :token",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return write.held

    def decide(
        self,
        run_id: str,
        step: str,
        token: str,
        version: int,
        sets: dict[str, Any],
        decision: dict[str, Any],
        ends: bool,
    ) -> bool:
        """Write one decision if the step still waits at `version`; False if anything changed meanwhile.

        `sets` are top-level or `approval.<name>` attributes; `ends` removes the token (decided).
        """
        names: dict[str, str] = {
            "#status": "status",
            "#token": "wait_token",
            "#version": "approval_version",
            "#decisions": "decisions",
            "#approval": "approval",
        }
        values: dict[str, Any] = {
            ":waiting": {"S": "waiting"},
            ":token": {"S": token},
            ":version": {"N": str(version)},
            ":next": {"N": str(version + 1)},
            ":decision": to_attribute([decision]),
            ":none": {"L": []},
        }
        clauses = [
            "#version = :next",
            "#decisions = list_append(if_not_exists(#decisions, :none), :decision)",
        ]
        for index, (path, value) in enumerate(sets.items()):
            parts = path.split(".")
            aliases = []
            for depth, part in enumerate(parts):
                alias = "#approval" if (depth == 0 and part == "approval") else f"#s{index}_{depth}"
                names[alias] = part
                aliases.append(alias)
            values[f":s{index}"] = to_attribute(value)
            clauses.append(f"{'.'.join(aliases)} = :s{index}")
        expression = "SET " + ", ".join(clauses) + (" REMOVE #token" if ends else "")
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step),
                UpdateExpression=expression,
                ConditionExpression="#status = :waiting AND #token = :token AND #version = :version",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return write.held

    def note_closed(self, run_id: str, step: str, closed: dict[str, Any]) -> None:
        """Set `approval.closed` (the Slack message rewritten after the approval ended undecided)."""
        with conditional():
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step),
                UpdateExpression="SET #approval.#closed = :closed",
                ConditionExpression="attribute_exists(#approval)",
                ExpressionAttributeNames={"#approval": "approval", "#closed": "closed"},
                ExpressionAttributeValues={":closed": to_attribute(closed)},
            )

    # -- inbox --------------------------------------------------------------------------------
    def add_inbox(self, approvers: set[str], run_id: str, step: str, summary: dict[str, Any]) -> None:
        for approver in sorted(approvers):
            item = inbox_key(approver, run_id, step) | {
                "run_id": {"S": run_id},
                "step": {"S": step},
                "summary": to_attribute(summary),
            }
            self.client.put_item(TableName=self.table, Item=item)

    def remove_inbox(self, approvers: set[str], run_id: str, step: str) -> None:
        for approver in sorted(approvers):
            self.client.delete_item(TableName=self.table, Key=inbox_key(approver, run_id, step))

    def inbox(self, approver: str) -> list[dict[str, Any]]:
        """The inbox items of one approver (one Query, paged)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": INBOX_PREFIX + approver}},
        }
        return query_all(self.client, kwargs)
