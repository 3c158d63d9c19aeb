"""Run history (GET /runs): which index answers a query, the bounded read, the cursor, run durations.

docs/history.md has the table of access patterns -> index. In short: the planner takes the index whose
partition key matches the most selective filter (or the sort), turns the date range into a key condition
where the index sorts by start time, and leaves the other filters to a FilterExpression. A page then
evaluates at most READ_FACTOR x limit index entries: a combination no index answers returns a short page
(possibly empty) and a cursor rather than reading on without bound.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from flowdeck.constants import PK, SK
from flowdeck.errors import BadRequest
from flowdeck.status import RunStatus
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
    GLOBAL_INDEXES,
    KEY_ATTRIBUTES,
    RUN_KIND,
    RUN_STARTED_AT,
    workflow_status,
)

if TYPE_CHECKING:
    from flowdeck.run_events import Reaction
    from flowdeck.stores.runs import RunStore

# A page evaluates at most READ_FACTOR x limit index entries (ScannedCount), whatever the filters.
READ_FACTOR = 5
CURSOR_VERSION = 1
# Sorts after every character a stored time may continue with (digits, '.', 'Z', '+'): "up to the
# end of this second" in a string key range.
_END_OF_SECOND = "~"
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
_START_KEYS = {"started_at", RUN_STARTED_AT}
FINISHED = frozenset(status.value for status in RunStatus if status.finished)


def _key_time(moment: datetime, end: bool) -> str:
    """A bound on stored ISO start times (UTC, any sub-second precision), widened to the whole second."""
    second = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return second + _END_OF_SECOND if end else second


def _parse(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass(frozen=True)
class HistoryPlan:
    """How one history query reads: an index, its partition, a key range, residual filters, an order."""

    index: str
    partition_value: str
    ascending: bool
    # Residual equality filters (attribute, value): the FilterExpression.
    filters: tuple[tuple[str, str], ...] = ()
    since: datetime | None = None
    until: datetime | None = None

    @property
    def partition_key(self) -> str:
        return GLOBAL_INDEXES[self.index][0]

    @property
    def sort_key(self) -> str:
        return GLOBAL_INDEXES[self.index][1]

    @property
    def range_in_key(self) -> bool:
        """Whether the date range is a key condition (the index sorts by start time) or a filter."""
        return self.sort_key in _START_KEYS

    def time_bounds(self) -> tuple[str | None, str | None]:
        """The date range as string bounds on stored start times (whole seconds; `accepts` is exact)."""
        low = _key_time(self.since, end=False) if self.since else None
        high = _key_time(self.until, end=True) if self.until else None
        return low, high

    @property
    def residual(self) -> bool:
        """Whether some index entries read may be left out of the page."""
        return bool(self.filters or self.since or self.until)

    def accepts(self, item: dict[str, Any]) -> bool:
        """The exact date range (the key range is widened to whole seconds)."""
        if self.since is None and self.until is None:
            return True
        started = _parse(item.get("started_at"))
        if started is None:
            return False
        return not ((self.since and started < self.since) or (self.until and started > self.until))

    def fingerprint(self) -> str:
        """Names this query (not its page): a cursor only continues the query it came from."""
        shape = [
            self.index,
            self.partition_value,
            self.ascending,
            list(self.filters),
            self.since.isoformat() if self.since else None,
            self.until.isoformat() if self.until else None,
        ]
        return hashlib.sha256(json.dumps(shape).encode()).hexdigest()[:16]

    def key_names(self) -> tuple[str, ...]:
        """The attributes of a start key (LastEvaluatedKey) on this index."""
        return (PK, SK, self.partition_key, self.sort_key)

    def key_of(self, item: dict[str, Any]) -> dict[str, Any]:
        """The start key continuing after `item` (a raw DynamoDB item read from this index)."""
        return {name: item[name] for name in self.key_names()}


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


# -- durations (by-duration's key) -----------------------------------------------------------------
def duration_ms(started_at: Any, ended_at: Any) -> int | None:
    """Milliseconds between two stored ISO times; None when either is missing or unreadable."""
    begin, end = _parse(started_at), _parse(ended_at)
    if begin is None or end is None:
        return None
    return max(0, round((end - begin).total_seconds() * 1000))


def record_duration(runs: RunStore) -> Reaction:
    """A run-events reaction: once a run has ended, set its duration_ms (the by-duration index's key).

    Idempotent: a redelivered change finds the duration already set and writes nothing; the write's
    condition (the same start and end) keeps a stale change from overwriting a newer end.
    """

    def react(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if new.get("status") not in FINISHED:
            return
        started, ended = new.get("started_at"), new.get("ended_at")
        milliseconds = duration_ms(started, ended)
        if milliseconds is None or new.get("duration_ms") == milliseconds:
            return
        runs.set_duration(str(new.get("pk")), str(started), str(ended), milliseconds)

    return react
