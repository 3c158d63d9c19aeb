"""Times as the records store them: ISO 8601 in UTC, written and read in one place."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def now_iso() -> str:
    """Now, in UTC, as an ISO 8601 string (the form every record's time takes)."""
    return datetime.now(UTC).isoformat()


def parse_time(value: Any) -> datetime | None:
    """A stored time ('Z', an offset, or naive meaning UTC) as an aware datetime; None if unreadable."""
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    """Seconds from start to end (to now while end is None), to the millisecond; None without a start."""
    begin, finish = parse_time(start), parse_time(end)
    if begin is None:
        return None
    return round(((finish or datetime.now(UTC)) - begin).total_seconds(), 3)


def duration_ms(started_at: Any, ended_at: Any) -> int | None:
    """Whole milliseconds between two stored times (never negative); None unless both are readable."""
    begin, end = parse_time(started_at), parse_time(ended_at)
    if begin is None or end is None:
        return None
    return max(0, round((end - begin).total_seconds() * 1000))
