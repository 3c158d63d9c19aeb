"""A cancel under way (SPEC §2): asked for first, recorded `cancelled` only once nothing of the run runs.

A cancel (a person's, or the budget guard's) writes `cancel_requested_at`, `cancel_mode`,
`cancel_reason` and `cancelled_by` on the run and leaves its status alone. Workers see the request
and stop their steps; every change that could be the last process ending (a step leaving `running`,
the cleanup finishing, the request itself) calls `settle`, which records the run `cancelled` with
`ended_at` at that moment, by one conditional write, once no step runs and no cleanup is pending.
`settle` is idempotent: the run-events reaction calls it for every such change, at least once.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.constants import PK, RUN_SK, SK, STEP_SK_PREFIX
from flowdeck.stores.conditions import conditional
from flowdeck.stores.runs import RunStore, from_item
from flowdeck.stores.schema import WORKFLOW_STATUS, workflow_status

log = logging.getLogger("flowdeck.cancel")

CANCEL_REQUESTED_AT = "cancel_requested_at"
# What a run (and each step still running under a cancel) shows of the cancel: when, how, who, why.
CANCEL_FIELDS = (CANCEL_REQUESTED_AT, "cancel_mode", "cancelled_by", "cancel_reason")
# A run in one of these may be cancelled; a cancel under way keeps it there until settled.
UNDER_WAY = ("queued", "running", "waiting")
# A cleanup in one of these still has (or may start) a process of the run.
CLEANUP_OPEN = ("pending", "running")
CANCELLED = "cancelled"
CANCELLED_ERROR = "Cancelled"
# Errors Step Functions answers for a token that no longer waits.
TOKEN_GONE = {"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"}
MAX_CAUSE = 500


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def cancel_under_way(run: dict[str, Any] | None) -> bool:
    """True for a run whose cancel was asked for and that is not recorded ended yet."""
    return run is not None and bool(run.get(CANCEL_REQUESTED_AT)) and run.get("status") in UNDER_WAY


def request_cancel(
    runs: RunStore,
    run_id: str,
    mode: str,
    reason: str,
    by: str,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any] | None:
    """Record the cancel request, status untouched: the run after it, None if ended or already asked."""
    # `extra`: more attribute names -> DynamoDB values set with it (cleanup, the budget's error).
    names = {"#status": "status", "#at": CANCEL_REQUESTED_AT}
    values: dict[str, Any] = {
        ":at": {"S": now_iso()},
        ":mode": {"S": mode},
        ":reason": {"S": reason},
        ":by": {"S": by},
    }
    sets = ["#at = :at", "cancel_mode = :mode", "cancel_reason = :reason", "cancelled_by = :by"]
    for index, (name, value) in enumerate((extra or {}).items()):
        names[f"#x{index}"] = name
        values[f":x{index}"] = value
        sets.append(f"#x{index} = :x{index}")
    values |= {f":s{i}": {"S": status} for i, status in enumerate(UNDER_WAY)}
    allowed = ", ".join(f":s{i}" for i in range(len(UNDER_WAY)))
    with conditional() as write:
        answer = runs.client.update_item(
            TableName=runs.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression="SET " + ", ".join(sets),
            ConditionExpression=f"#status IN ({allowed}) AND attribute_not_exists(#at)",
            ExpressionAttributeNames=names,
            ExpressionAttributeValues=values,
            ReturnValues="ALL_NEW",
        )
    return from_item(answer.get("Attributes", {})) if write.held else None


def escalate_to_force(runs: RunStore, run_id: str, by: str) -> bool:
    """A second press: a graceful (or cleanup) cancel under way becomes force; False if it cannot."""
    values: dict[str, Any] = {":force": {"S": "force"}, ":now": {"S": now_iso()}, ":by": {"S": by}}
    values |= {f":s{i}": {"S": status} for i, status in enumerate(UNDER_WAY)}
    allowed = ", ".join(f":s{i}" for i in range(len(UNDER_WAY)))
    with conditional() as write:
        runs.client.update_item(
            TableName=runs.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression=(
                "SET cancel_mode = :force, cancel_escalated_at = :now, cancel_escalated_by = :by"
            ),
            ConditionExpression=(
                f"#status IN ({allowed}) AND attribute_exists(#at) AND cancel_mode <> :force"
            ),
            ExpressionAttributeNames={"#status": "status", "#at": CANCEL_REQUESTED_AT},
            ExpressionAttributeValues=values,
        )
    return write.held


def fail_waiting_steps(runs: RunStore, sfn: Any, run_id: str, error: str, reason: str) -> None:
    """Fail the token of each waiting step (approval, paused) and record the step cancelled."""
    _, steps, _ = runs.get_run_items(run_id)
    for step_id, item in steps.items():
        token = item.get("wait_token")
        if item.get("status") != "waiting" or not isinstance(token, str):
            continue
        try:
            sfn.send_task_failure(taskToken=token, error=error, cause=reason[:MAX_CAUSE])
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in TOKEN_GONE:
                log.warning("run %s: step %s token not failed: %s", run_id, step_id, exc)
        except BotoCoreError as exc:
            log.warning("run %s: step %s token not failed: %s", run_id, step_id, exc.__class__.__name__)
        with conditional():  # a step no longer waiting keeps its record
            runs.client.update_item(
                TableName=runs.table,
                Key={PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step_id}},
                UpdateExpression=(
                    "SET #status = :cancelled, #error = :error, #cause = :cause, ended_at = :now"
                ),
                ConditionExpression="#status = :waiting",
                ExpressionAttributeNames={"#status": "status", "#error": "error", "#cause": "cause"},
                ExpressionAttributeValues={
                    ":cancelled": {"S": CANCELLED},
                    ":waiting": {"S": "waiting"},
                    ":error": {"S": error},
                    ":cause": {"S": reason},
                    ":now": {"S": now_iso()},
                },
            )


def settle(runs: RunStore, run_id: str) -> bool:
    """Record the run `cancelled` if its cancel is under way and nothing of it runs; True once cancelled."""
    # Safe any number of times, from anywhere: the condition keeps a run ended otherwise (or settled).
    run, steps, _ = runs.get_run_items(run_id)
    if run is None:
        return False
    if not cancel_under_way(run):
        return run.get("status") == CANCELLED
    running = sorted(step for step, item in steps.items() if item.get("status") == "running")
    if running or run.get("cleanup_status") in CLEANUP_OPEN:
        return False
    values: dict[str, Any] = {
        ":cancelled": {"S": CANCELLED},
        ":now": {"S": now_iso()},
        ":ws": {"S": workflow_status(str(run.get("workflow", "")), CANCELLED)},
        ":pending": {"S": CLEANUP_OPEN[0]},
        ":running": {"S": CLEANUP_OPEN[1]},
    }
    values |= {f":s{i}": {"S": status} for i, status in enumerate(UNDER_WAY)}
    allowed = ", ".join(f":s{i}" for i in range(len(UNDER_WAY)))
    with conditional() as write:
        runs.client.update_item(
            TableName=runs.table,
            Key={PK: {"S": run_id}, SK: {"S": RUN_SK}},
            UpdateExpression="SET #status = :cancelled, ended_at = :now, #ws = :ws",
            ConditionExpression=(
                f"#status IN ({allowed}) AND attribute_exists(#at) "
                "AND (attribute_not_exists(cleanup_status) OR NOT cleanup_status IN (:pending, :running))"
            ),
            ExpressionAttributeNames={
                "#status": "status",
                "#at": CANCEL_REQUESTED_AT,
                "#ws": WORKFLOW_STATUS,
            },
            ExpressionAttributeValues=values,
        )
    if write.held:
        log.info("run %s: cancelled (no process of it runs any more)", run_id)
    return write.held


class CancelSettler:
    """The run-events reactions that settle a cancel: after the request, each step end, the cleanup."""

    def __init__(self, runs: RunStore) -> None:
        self.runs = runs

    def on_run_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """The request itself (a run with nothing running) or the cleanup ending may be the last word."""
        if cancel_under_way(new):
            settle(self.runs, str(new[PK]))

    def on_step_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A step that stopped running may have been the run's last process."""
        if (old or {}).get("status") != "running" or new.get("status") == "running":
            return
        run_id = str(new[PK])
        # A small read first: most steps end in runs that nobody cancels.
        if cancel_under_way(self.runs.cancel_state(run_id, consistent=True)):
            settle(self.runs, run_id)
