"""Run history (GET /runs): which index answers a query, the bounded read and the cursor.

docs/history.md has the table of access patterns -> index. In short: the planner takes the index whose
partition key matches the most selective filter (or the sort), turns the date range into a key condition
where the index sorts by start time, and leaves the other filters to a FilterExpression. A page then
evaluates at most READ_FACTOR x limit index entries: a combination no index answers returns a short page
(possibly empty) and a cursor rather than reading on without bound.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from flowdeck.errors import BadRequest
from flowdeck.stores.history_plan import HistoryPlan
from flowdeck.stores.schema import (
    BY_COST_INDEX,
    BY_DURATION_INDEX,
    BY_STARTED_INDEX,
    BY_STATUS_INDEX,
    BY_TRIGGER_INDEX,
    BY_USER_INDEX,
    BY_WORKFLOW_COST_INDEX,
    BY_WORKFLOW_DURATION_INDEX,
    BY_WORKFLOW_INDEX,
    BY_WORKFLOW_STATUS_INDEX,
    KEY_ATTRIBUTES,
    RUN_KIND,
    workflow_status,
)

# A page evaluates at most READ_FACTOR x limit index entries (ScannedCount), whatever the filters.
READ_FACTOR = 5
CURSOR_VERSION = 1
# Equality filters in the order they narrow a start-time query best (more distinct values first);
# the first one present picks the index, the others become the FilterExpression.
_START_INDEXES = (
    ("started_by", BY_USER_INDEX),
    ("workflow", BY_WORKFLOW_INDEX),
    ("status", BY_STATUS_INDEX),
    ("trigger", BY_TRIGGER_INDEX),
)
_SORT_INDEXES = {
    "cost": (BY_COST_INDEX, BY_WORKFLOW_COST_INDEX),
    "duration": (BY_DURATION_INDEX, BY_WORKFLOW_DURATION_INDEX),
}


def plan_history(
    *,
    workflow: str | None = None,
    status: str | None = None,
    trigger: str | None = None,
    started_by: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    sort: str = "started_at",
    ascending: bool = False,
) -> HistoryPlan:
    """Pick the index for a GET /runs query; the filters it does not key on become residual filters."""
    wanted = {"workflow": workflow, "status": status, "trigger": trigger, "started_by": started_by}
    given = {name: value for name, value in wanted.items() if value is not None}
    if sort in _SORT_INDEXES:
        every_run, one_workflow = _SORT_INDEXES[sort]
        index, value = (one_workflow, given.pop("workflow")) if "workflow" in given else (every_run, RUN_KIND)
    elif workflow is not None and status is not None:
        index, value = BY_WORKFLOW_STATUS_INDEX, workflow_status(workflow, status)
        del given["workflow"], given["status"]
    else:
        index, value = BY_STARTED_INDEX, RUN_KIND
        for name, candidate in _START_INDEXES:
            if name in given:
                index, value = candidate, given.pop(name)
                break
    return HistoryPlan(
        index=index,
        partition_value=value,
        ascending=ascending,
        filters=tuple(sorted(given.items())),
        since=since,
        until=until,
    )


# -- cursor -------------------------------------------------------------------------------------
def encode_cursor(plan: HistoryPlan, key: dict[str, Any]) -> str:
    """The opaque cursor continuing `plan` after the index key `key`."""
    body = {"v": CURSOR_VERSION, "q": plan.fingerprint(), "k": key}
    return base64.urlsafe_b64encode(json.dumps(body, separators=(",", ":")).encode()).decode()


def decode_cursor(plan: HistoryPlan, cursor: str) -> dict[str, Any]:
    """The start key in `cursor`, checked to be a key of `plan`'s index inside its partition and range.

    Anything else is a BadRequest (DynamoDB would refuse the key with a 400 of its own, seen as a 5xx).
    """
    try:
        body = json.loads(base64.urlsafe_b64decode(cursor.encode()))
    except (binascii.Error, ValueError, UnicodeDecodeError):
        raise BadRequest("cursor is not one this API returned") from None
    if not isinstance(body, dict) or body.get("v") != CURSOR_VERSION or not isinstance(body.get("k"), dict):
        raise BadRequest("cursor is not one this API returned")
    if body.get("q") != plan.fingerprint():
        raise BadRequest("cursor belongs to another query: pass the same filters, sort and order")
    key: dict[str, Any] = body["k"]
    names = plan.key_names()
    if set(key) != set(names) or not all(_typed(name, key[name]) for name in names):
        raise BadRequest("cursor is not one this API returned for this query")
    if key[plan.partition_key][KEY_ATTRIBUTES[plan.partition_key]] != plan.partition_value:
        raise BadRequest("cursor is not one this API returned for this query")
    if plan.range_in_key:
        low, high = plan.time_bounds()
        position = key[plan.sort_key]["S"]
        if (low and position < low) or (high and position > high):
            raise BadRequest("cursor is not one this API returned for this query")
    return key


def _typed(name: str, value: Any) -> bool:
    """`value` is a DynamoDB value of the attribute's declared key type."""
    kind = KEY_ATTRIBUTES.get(name)
    if not isinstance(value, dict) or set(value) != {kind} or not isinstance(value[kind], str):
        return False
    if kind == "N":
        try:
            return Decimal(value[kind]).is_finite()
        except InvalidOperation:
            return False
    return True
