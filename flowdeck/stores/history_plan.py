"""One history query's read on the runs table: the index, partition, key range, residual filters, order.

flowdeck.runs.history plans it from a request; RunStore.read_history executes it.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from flowdeck.clock import parse_time
from flowdeck.constants import PK, SK
from flowdeck.stores.schema import GLOBAL_INDEXES, RUN_STARTED_AT

# Sorts after every character a stored time may continue with (digits, '.', 'Z', '+'): "up to the
# end of this second" in a string key range.
_END_OF_SECOND = "~"

_START_KEYS = {"started_at", RUN_STARTED_AT}


def _key_time(moment: datetime, end: bool) -> str:
    """A bound on stored ISO start times (UTC, any sub-second precision), widened to the whole second."""
    second = moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S")
    return second + _END_OF_SECOND if end else second


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
        started = parse_time(item.get("started_at"))
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
