"""The runs table: run records (written by the state machine and workers) and their reads."""

from __future__ import annotations

import hashlib
from decimal import Decimal
from typing import Any

from botocore.exceptions import ClientError

from flowdeck import aws
from flowdeck.constants import (
    ATTEMPT_PREFIX,
    LOST_TOKEN,
    OUTPUTS_PREFIX,
    OUTPUTS_SK,
    PK,
    RUN_SK,
    SK,
    STEP_SK_PREFIX,
    TOKENS_IN_PREFIX,
    TOKENS_OUT_PREFIX,
)
from flowdeck.errors import BadRequest
from flowdeck.stores.conditions import conditional
from flowdeck.stores.history_plan import HistoryPlan
from flowdeck.stores.items import from_item, to_attribute, to_item
from flowdeck.stores.schema import (
    CANCEL_REQUESTED_AT,
    DURATION_MS,
    KEY_ATTRIBUTES,
    RUN_COST_USD,
    WORKFLOW_STATUS,
    workflow_status,
)

# Step attributes a new attempt's whole-item put keeps: the decisions people made on a paused step.
KEPT_ACROSS_ATTEMPTS = frozenset({"decisions"})

# The run-level error of a run whose StartExecution failed after its record was written.
START_FAILED = "StartFailed"

# A step the state machine gave up on (token "lost") is final: a late redelivery is refused.
START_CONDITION = "attribute_not_exists(#token) OR (#token <> :token AND #token <> :lost)"
TRANSACTION_CANCELLED = "TransactionCanceledException"
CONDITION_CHECK_FAILED = "ConditionalCheckFailed"

# A retry's plan, claimed once under the new run's id (flowdeck.control.retry).
RETRY_SK = "RETRY"


def outputs_of(item: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {k.removeprefix(OUTPUTS_PREFIX): v for k, v in item.items() if k.startswith(OUTPUTS_PREFIX)}


def _range_condition(
    name: str, low_name: str, high_name: str, low: str | None, high: str | None, values: dict[str, Any]
) -> str:
    """`name BETWEEN low AND high`, or the one-sided form; adds the bounds to `values`."""
    if low:
        values[low_name] = {"S": low}
    if high:
        values[high_name] = {"S": high}
    if low and high:
        return f"{name} BETWEEN {low_name} AND {high_name}"
    return f"{name} >= {low_name}" if low else f"{name} <= {high_name}"


class RunStore:
    """Reads and writes run items (sk RUN), step output items (STEP#id) and dispatch claims."""

    def __init__(self, table_name: str, client: Any = None, artifacts: Any = None) -> None:
        """`artifacts` (an ArtifactStore) reads back step outputs that were too large to keep inline."""
        self.table = table_name
        self.client = client or aws.client("dynamodb")
        self.artifacts = artifacts

    def _resolved(self, outputs: dict[str, Any]) -> dict[str, Any]:
        """Offloaded outputs ({"$ref": "s3://..."}) replaced by their content."""
        if self.artifacts is None:
            return outputs
        return {step: self.artifacts.resolve(value) for step, value in outputs.items()}

    # -- reads ------------------------------------------------------------------------------
    def get_run_items(
        self, run_id: str
    ) -> tuple[dict[str, Any] | None, dict[str, dict[str, Any]], dict[str, dict[str, Any]]]:
        """The run item, its step items by step id, and the published outputs (one Query)."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "#pk = :pk",
            "ExpressionAttributeNames": {"#pk": PK},
            "ExpressionAttributeValues": {":pk": {"S": run_id}},
            "ConsistentRead": True,
        }
        while True:
            page = self.client.query(**kwargs)
            items += [from_item(i) for i in page["Items"]]
            if "LastEvaluatedKey" not in page:
                break
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        run = next((i for i in items if i[SK] == RUN_SK), None)
        steps = {i[SK].removeprefix(STEP_SK_PREFIX): i for i in items if i[SK].startswith(STEP_SK_PREFIX)}
        outputs = self._resolved(outputs_of(next((i for i in items if i[SK] == OUTPUTS_SK), {})))
        return run, steps, outputs

    def cancel_state(self, run_id: str, consistent: bool = False) -> dict[str, Any]:
        """The run's status and cancel fields only (a small read; {} if no run)."""
        answer = self.client.get_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            ProjectionExpression="#status, cancel_mode, cancel_reason, cancel_requested_at",
            ExpressionAttributeNames={"#status": "status"},
            ConsistentRead=consistent,
        )
        return from_item(answer.get("Item", {}))

    def step_outputs(self, run_id: str) -> dict[str, dict[str, Any]]:
        """Published outputs of the run's steps so far, by step id (what later steps see)."""
        answer = self.client.get_item(
            TableName=self.table, Key={PK: {"S": run_id}, SK: {"S": OUTPUTS_SK}}, ConsistentRead=True
        )
        return self._resolved(outputs_of(from_item(answer.get("Item", {}))))

    def publish_outputs(self, run_id: str, step_id: str, outputs: dict[str, Any]) -> None:
        """Add one step's outputs to the run's outputs item (creating it on first use)."""
        self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": OUTPUTS_SK}},
            UpdateExpression="SET #step = :outputs",
            ExpressionAttributeNames={"#step": OUTPUTS_PREFIX + step_id},
            ExpressionAttributeValues={":outputs": to_attribute(outputs)},
        )

    def read_history(
        self, plan: HistoryPlan, limit: int, start_key: dict[str, Any] | None, max_reads: int
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """Up to `limit` runs of `plan`, evaluating at most `max_reads` index entries; and the next start key.

        Query's Limit counts entries evaluated before the FilterExpression, so it is the read bound.
        With residual filters the next Limit is sized by the share that matched so far; a read past the
        page's last run is read again by the next page (its cursor is that run's key).
        """
        names, values, key_condition = self._key_condition(plan)
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": plan.index,
            "KeyConditionExpression": key_condition,
            "ScanIndexForward": plan.ascending,
        }
        conditions = []
        for index, (attribute, value) in enumerate(plan.filters):
            names[f"#f{index}"] = attribute
            values[f":f{index}"] = {"S": value}
            conditions.append(f"#f{index} = :f{index}")
        low, high = plan.time_bounds()
        if not plan.range_in_key and (low or high):
            names["#started"] = "started_at"
            conditions.append(_range_condition("#started", ":since", ":until", low, high, values))
        if conditions:
            kwargs["FilterExpression"] = " AND ".join(conditions)
        kwargs["ExpressionAttributeNames"] = names
        kwargs["ExpressionAttributeValues"] = values
        found: list[tuple[dict[str, Any], dict[str, Any]]] = []
        scanned = 0
        last = start_key
        while len(found) < limit and scanned < max_reads:
            wanted = limit - len(found)
            if not plan.residual:
                size = wanted
            elif found:
                size = -(-wanted * scanned // len(found))  # ceil: at the share seen so far
            else:
                size = wanted if scanned == 0 else max_reads
            kwargs["Limit"] = max(1, min(size, max_reads - scanned))
            if last is not None:
                kwargs["ExclusiveStartKey"] = last
            try:
                page = self.client.query(**kwargs)
            except ClientError as exc:
                if start_key is not None and exc.response["Error"]["Code"] == "ValidationException":
                    raise BadRequest("cursor is not one this API returned for this query") from None
                raise
            scanned += int(page.get("ScannedCount", len(page["Items"])))
            for raw in page["Items"]:
                item = from_item(raw)
                if plan.accepts(item):
                    found.append((raw, item))
            last = page.get("LastEvaluatedKey")
            if last is None:
                break
        if len(found) > limit:
            found = found[:limit]
            last = plan.key_of(found[-1][0])
        return [item for _, item in found], last

    @staticmethod
    def _key_condition(plan: HistoryPlan) -> tuple[dict[str, str], dict[str, Any], str]:
        names = {"#p": plan.partition_key}
        values: dict[str, Any] = {":p": {KEY_ATTRIBUTES[plan.partition_key]: plan.partition_value}}
        condition = "#p = :p"
        low, high = plan.time_bounds()
        if plan.range_in_key and (low or high):
            names["#s"] = plan.sort_key
            condition += " AND " + _range_condition("#s", ":low", ":high", low, high, values)
        return names, values, condition

    def set_duration(self, run_id: str, started_at: str, ended_at: str, milliseconds: int) -> bool:
        """Record an ended run's duration (by-duration's key); False if its start or end changed meanwhile."""
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression="SET #duration = :duration",
                ConditionExpression="#started = :started AND #ended = :ended",
                ExpressionAttributeNames={
                    "#duration": DURATION_MS,
                    "#started": "started_at",
                    "#ended": "ended_at",
                },
                ExpressionAttributeValues={
                    ":duration": {"N": str(milliseconds)},
                    ":started": {"S": started_at},
                    ":ended": {"S": ended_at},
                },
            )
        return write.held

    # -- starts (flowdeck.control.concurrency) -------------------------------------------------
    def record_start(self, run_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Record a run before its execution starts; the item as it was before (None: this call created it).

        Every field is set only where the item lacks it (`if_not_exists`), as the state machine's
        RecordRunStart does too: either writer may arrive first and the item ends the same, no field
        of the other lost, and a repeated start changes nothing.
        """
        names = {f"#f{i}": name for i, name in enumerate(fields)}
        values = {f":f{i}": to_attribute(value) for i, value in enumerate(fields.values())}
        sets = [f"#f{i} = if_not_exists(#f{i}, :f{i})" for i in range(len(fields))]
        answer = self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression="SET " + ", ".join(sets),
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_OLD",
        )
        old = answer.get("Attributes")
        return from_item(old) if old else None

    def record_start_failed(self, run_id: str, workflow: str, reason: str, now: str) -> bool:
        """A run whose execution could not be started ends `failed` with the reason; False if it started.

        Conditional on no execution having recorded it (no execution_arn) and on it not having ended:
        an execution that did start keeps its own record.
        """
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression=(
                    "SET #status = :failed, #ws = :ws, #error = :error, #cause = :cause, #ended = :now"
                ),
                ConditionExpression="attribute_not_exists(#arn) AND #status IN (:running, :queued)",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#ws": WORKFLOW_STATUS,
                    "#error": "error",
                    "#cause": "error_cause",
                    "#ended": "ended_at",
                    "#arn": "execution_arn",
                },
                ExpressionAttributeValues={
                    ":failed": {"S": "failed"},
                    ":ws": {"S": workflow_status(workflow, "failed")},
                    ":error": {"S": START_FAILED},
                    ":cause": {"S": reason[:1000]},
                    ":now": {"S": now},
                    ":running": {"S": "running"},
                    ":queued": {"S": "queued"},
                },
            )
        return write.held

    # -- worker writes ----------------------------------------------------------------------
    def start_attempt_unless_cancelled(
        self, run_id: str, step_id: str, token: str, attempt: int, fields: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, bool]:
        """start_attempt() and, in the same write, the check that no cancel of the run was asked for.

        (item, True): started, and the run was not being cancelled as the start landed; (item, False):
        started, and whether a cancel was asked for is not known (read it); (None, False): a duplicate.
        One transaction in place of a write then a strongly consistent read: a round trip less on
        every step's way to its process, for twice the write units of a plain put.
        """
        item = self._attempt_item(run_id, step_id, token, attempt, fields)
        try:
            self.client.transact_write_items(
                TransactItems=[
                    {"Put": self._put_request(item, START_CONDITION, self._start_values(item))},
                    {
                        "ConditionCheck": {
                            "TableName": self.table,
                            "Key": {PK: {"S": run_id}, SK: {"S": RUN_SK}},
                            "ConditionExpression": "attribute_not_exists(#asked)",
                            "ExpressionAttributeNames": {"#asked": CANCEL_REQUESTED_AT},
                        }
                    },
                ]
            )
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != TRANSACTION_CANCELLED:
                raise
            reasons = [r.get("Code") for r in exc.response.get("CancellationReasons", [])]
            if reasons[:1] == [CONDITION_CHECK_FAILED]:
                return None, False  # this token and attempt started before: a duplicate delivery
            # A cancel was asked for, or the run item was being written at the same moment
            # (TransactionConflict): start the plain way; the caller reads the cancel.
            return self._put_start(item), False
        return item, True

    def start_attempt(
        self, run_id: str, step_id: str, token: str, attempt: int, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Record the attempt's start once per task token and attempt; the item written, or None.

        SQS delivers at least once: the token's hash on the step makes a second delivery of the
        same message fail the write's condition, so it is not run twice. Whole-item puts, not
        updates: only this worker writes the step while the attempt runs, and a put is cheaper.
        """
        return self._put_start(self._attempt_item(run_id, step_id, token, attempt, fields))

    def _put_start(self, item: dict[str, Any]) -> dict[str, Any] | None:
        """Put the starting attempt's item under the start condition; the item, or None if refused."""
        with conditional() as write:
            self._put(item, START_CONDITION, self._start_values(item))
        return item if write.held else None

    @staticmethod
    def _start_values(item: dict[str, Any]) -> dict[str, str]:
        return {":token": item["token"], ":lost": LOST_TOKEN}

    def _attempt_item(
        self, run_id: str, step_id: str, token: str, attempt: int, fields: dict[str, Any]
    ) -> dict[str, Any]:
        """The step item as the attempt starts: earlier attempts and decisions kept, this one added."""
        # With the attempt: moto reuses one token across a state's retries (AWS issues a new one).
        digest = hashlib.sha256(f"{token}:{attempt}".encode()).hexdigest()[:32]
        item: dict[str, Any] = {}
        if attempt > 1:
            previous = self.client.get_item(
                TableName=self.table, Key=self._step_key(run_id, step_id), ConsistentRead=True
            )
            item = {
                k: v
                for k, v in from_item(previous.get("Item", {})).items()
                if k.startswith(ATTEMPT_PREFIX) or k in KEPT_ACROSS_ATTEMPTS
            }
        item |= {
            PK: run_id,
            SK: STEP_SK_PREFIX + step_id,
            "step": step_id,
            "attempt": attempt,
            "token": digest,
        }
        return item | fields | {ATTEMPT_PREFIX + str(attempt): fields | {"attempt": attempt}}

    def finish_attempt(
        self,
        started: dict[str, Any],
        fields: dict[str, Any],
        attempt_fields: dict[str, Any],
    ) -> bool:
        """Record how the attempt ended; False if the step was taken over meanwhile.

        The state machine marks a step whose worker it gave up on (token "lost"): a late finish
        from that worker must not overwrite the record.
        """
        record_name = ATTEMPT_PREFIX + str(started["attempt"])
        item = started | fields | {record_name: started[record_name] | attempt_fields}
        with conditional() as write:
            self._put(item, "#token = :token", {":token": started["token"]})
        return write.held

    def update_running(self, started: dict[str, Any], fields: dict[str, Any]) -> dict[str, Any] | None:
        """Re-put the running step's item with `fields` (usage so far); None if taken over meanwhile."""
        item = started | fields
        with conditional() as write:
            self._put(item, "#token = :token", {":token": started["token"]})
        return item if write.held else None

    def add_run_usage(
        self, run_id: str, cost_usd: Decimal, tokens: dict[str, tuple[int, int]]
    ) -> Decimal | None:
        """Add a step's usage delta to the run's totals (atomic ADD); the run's new cost, None if no run."""
        names = {"#cost": "cost_usd", "#pk": PK, "#run_cost": RUN_COST_USD}
        values: dict[str, Any] = {":cost": {"N": format(cost_usd, "f")}}
        # run_cost_usd: the by-cost index's key, the same total (schema.RUN_COST_USD says why a copy).
        parts = ["#cost :cost", "#run_cost :cost"]
        for index, (model, (input_tokens, output_tokens)) in enumerate(sorted(tokens.items())):
            names |= {f"#i{index}": TOKENS_IN_PREFIX + model, f"#o{index}": TOKENS_OUT_PREFIX + model}
            values |= {f":i{index}": {"N": str(input_tokens)}, f":o{index}": {"N": str(output_tokens)}}
            parts += [f"#i{index} :i{index}", f"#o{index} :o{index}"]
        with conditional() as write:
            answer = self.client.update_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression="ADD " + ", ".join(parts),
                # Never create a bare run item for a run the state machine has not recorded.
                ConditionExpression="attribute_exists(#pk)",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
                ReturnValues="UPDATED_NEW",
            )
        if not write.held:
            return None
        total = answer.get("Attributes", {}).get("cost_usd")
        if total is None:
            # An ADD of zero may come back without the attribute (moto): read the total instead.
            current = self.client.get_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                ProjectionExpression="#cost",
                ExpressionAttributeNames={"#cost": "cost_usd"},
                ConsistentRead=True,
            )
            total = current.get("Item", {}).get("cost_usd", {"N": "0"})
        return Decimal(total["N"])

    # -- retries (flowdeck.control.retry) ------------------------------------------------------
    def claim_retry(self, run_id: str, retry_of: str, start: list[str], reused: list[str]) -> bool:
        """Record a retry's plan under its new run id, once; False when that id was claimed before."""
        with conditional() as write:
            self.client.put_item(
                TableName=self.table,
                Item={
                    PK: {"S": run_id},
                    SK: {"S": RETRY_SK},
                    "retry_of": {"S": retry_of},
                    "retry_from": to_attribute(start),
                    "reused": to_attribute(reused),
                },
                ConditionExpression="attribute_not_exists(#pk)",
                ExpressionAttributeNames={"#pk": PK},
            )
        return write.held

    def retry_claim(self, run_id: str) -> dict[str, Any] | None:
        """The plan claim_retry recorded for this run id, if any."""
        answer = self.client.get_item(
            TableName=self.table, Key={PK: {"S": run_id}, SK: {"S": RETRY_SK}}, ConsistentRead=True
        )
        return from_item(answer["Item"]) if "Item" in answer else None

    def link_retry(self, run_id: str, retry_of: str, start: list[str], reused: list[str]) -> None:
        """Put the retry's link and plan on its run item (RecordRunStart sets only its own fields)."""
        self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression="SET #of = :of, #from = :from, #reused = :reused",
            ExpressionAttributeNames={"#of": "retry_of", "#from": "retry_from", "#reused": "reused"},
            ExpressionAttributeValues={
                ":of": {"S": retry_of},
                ":from": to_attribute(start),
                ":reused": to_attribute(reused),
            },
        )

    def forget_retry(self, run_id: str, steps: list[str]) -> None:
        """Delete what a retry wrote before its run was refused (nothing of it started)."""
        for sort_key in [RETRY_SK, OUTPUTS_SK, *(STEP_SK_PREFIX + step for step in steps)]:
            self.client.delete_item(TableName=self.table, Key={PK: {"S": run_id}, SK: {"S": sort_key}})

    def add_retry(self, run_id: str, retry_id: str) -> None:
        """List a retry on the run it retries (a set: a repeated add changes nothing)."""
        self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression="ADD #retries :retry",
            ConditionExpression="attribute_exists(#pk)",
            ExpressionAttributeNames={"#retries": "retries", "#pk": PK},
            ExpressionAttributeValues={":retry": {"SS": [retry_id]}},
        )

    def copy_outputs(self, from_run: str, to_run: str, steps: list[str]) -> None:
        """Publish `steps`' outputs of one run in another, as stored (S3 references stay references)."""
        answer = self.client.get_item(
            TableName=self.table, Key={PK: {"S": from_run}, SK: {"S": OUTPUTS_SK}}, ConsistentRead=True
        )
        stored = answer.get("Item", {})
        names = [OUTPUTS_PREFIX + step for step in steps if OUTPUTS_PREFIX + step in stored]
        if not names:
            return
        self.client.update_item(
            TableName=self.table,
            Key={PK: {"S": to_run}, SK: {"S": OUTPUTS_SK}},
            UpdateExpression="SET " + ", ".join(f"#o{i} = :o{i}" for i in range(len(names))),
            ExpressionAttributeNames={f"#o{i}": name for i, name in enumerate(names)},
            ExpressionAttributeValues={f":o{i}": stored[name] for i, name in enumerate(names)},
        )

    def put_reused_step(self, run_id: str, record: dict[str, Any]) -> None:
        """Write a step a retry takes over from an earlier run; the worker never runs it."""
        item = record | {PK: run_id, SK: STEP_SK_PREFIX + record["step"]}
        self.client.put_item(TableName=self.table, Item=to_item(item))

    # -- pause on failure (flowdeck.runner.pause, flowdeck.control.pause) ----------------------
    def record_waiting(
        self, run_id: str, step_id: str, token: str, since: str, deadline: str, allow_skip: bool
    ) -> bool:
        """Mark a failed step waiting for a decision, keeping its error; False for a stale delivery.

        Written from `failed` (a later pause than any recorded), or again with the same token (a
        redelivery): never over a decision already taken.
        """
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step_id),
                UpdateExpression="SET #status = :waiting, #token = :token, #since = :since, "
                "#deadline = :deadline, #allow_skip = :allow_skip",
                ConditionExpression="(#status = :failed AND "
                "(attribute_not_exists(#since) OR #since < :since)) "
                "OR (#status = :waiting AND #token = :token)",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#token": "wait_token",
                    "#since": "waiting_since",
                    "#deadline": "wait_deadline",
                    "#allow_skip": "allow_skip",
                },
                ExpressionAttributeValues={
                    ":waiting": {"S": "waiting"},
                    ":failed": {"S": "failed"},
                    ":token": {"S": token},
                    ":since": {"S": since},
                    ":deadline": {"S": deadline},
                    ":allow_skip": {"BOOL": allow_skip},
                },
            )
        return write.held

    def set_run_status(self, run_id: str, workflow: str, status: str, only_from: tuple[str, ...]) -> bool:
        """Move the run item to `status` (with its workflow_status) if it is in one of `only_from`."""
        # Never during a cancel: the run keeps its status until cancelled (a pause or approval asked
        # for meanwhile is refused, and its token failed).
        values = {f":from{i}": {"S": value} for i, value in enumerate(only_from)}
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
                UpdateExpression="SET #status = :status, #ws = :ws",
                ConditionExpression=f"#status IN ({', '.join(values)}) AND attribute_not_exists(#cancel)",
                ExpressionAttributeNames={
                    "#status": "status",
                    "#ws": WORKFLOW_STATUS,
                    "#cancel": "cancel_requested_at",
                },
                ExpressionAttributeValues=values
                | {":status": {"S": status}, ":ws": {"S": workflow_status(workflow, status)}},
            )
        return write.held

    def record_decision(
        self,
        run_id: str,
        step_id: str,
        token: str,
        status: str,
        decision: dict[str, Any],
        extra: dict[str, Any],
    ) -> bool:
        """End a step's wait with a person's decision; False if it no longer waits with `token` (409).

        `extra` sets more attributes by dotted path. The step's `token` is reset, so the next
        attempt's start is accepted even after the state machine marked the worker lost.
        """
        names = {
            "#status": "status",
            "#wait_token": "wait_token",
            "#decisions": "decisions",
            "#token": "token",
        }
        values: dict[str, Any] = {
            ":status": {"S": status},
            ":waiting": {"S": "waiting"},
            ":wait_token": {"S": token},
            ":decision": to_attribute([decision]),
            ":none": {"L": []},
            ":reset": {"S": "decided:" + hashlib.sha256(token.encode()).hexdigest()[:16]},
        }
        sets = [
            "#status = :status",
            "#decisions = list_append(if_not_exists(#decisions, :none), :decision)",
            "#token = :reset",
        ]
        for index, (path, value) in enumerate(extra.items()):
            aliases = []
            for depth, part in enumerate(path.split(".")):
                names[f"#x{index}_{depth}"] = part
                aliases.append(f"#x{index}_{depth}")
            values[f":x{index}"] = to_attribute(value)
            sets.append(f"{'.'.join(aliases)} = :x{index}")
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step_id),
                UpdateExpression="SET " + ", ".join(sets) + " REMOVE #wait_token",
                ConditionExpression="#status = :waiting AND #wait_token = :wait_token",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        return write.held

    def mark_not_run(self, run_id: str, step_id: str, status: str, reason: str) -> bool:
        """Record a step the ended run never reached as `status` (why: `not_run`); False if it has one."""
        with conditional() as write:
            self.client.update_item(
                TableName=self.table,
                Key=self._step_key(run_id, step_id),
                UpdateExpression="SET #step = :step, #status = :status, not_run = :reason",
                ConditionExpression="attribute_not_exists(#status) OR #status = :pending",
                ExpressionAttributeNames={"#step": "step", "#status": "status"},
                ExpressionAttributeValues={
                    ":step": {"S": step_id},
                    ":status": {"S": status},
                    ":reason": {"S": reason},
                    ":pending": {"S": "pending"},
                },
            )
        return write.held

    def _put(self, item: dict[str, Any], condition: str, values: dict[str, str]) -> None:
        self.client.put_item(**self._put_request(item, condition, values))

    def _put_request(self, item: dict[str, Any], condition: str, values: dict[str, str]) -> dict[str, Any]:
        return {
            "TableName": self.table,
            "Item": to_item(item),
            "ConditionExpression": condition,
            "ExpressionAttributeNames": {"#token": "token"},
            "ExpressionAttributeValues": {name: {"S": value} for name, value in values.items()},
        }

    def _step_key(self, run_id: str, step_id: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step_id}}
