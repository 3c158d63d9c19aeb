"""Schedule triggers: EventBridge Scheduler expressions (cron, rate, at), next fire times, firing input.

Expressions follow EventBridge Scheduler: `cron(min hour day-of-month month day-of-week year)`
(pyawscron's parser; exactly one of the two day fields is `?`), `rate(<n> minute|minutes|hour|hours|
day|days)` and `at(yyyy-mm-ddThh:mm:ss)` (once). cron and at are read in the trigger's IANA
`timezone`; as Scheduler does across daylight saving time, a wall time that does not exist (spring
forward) is skipped and one that happens twice (fall back) fires once, at its first occurrence.
Scheduler counts a rate from the schedule's creation; Flowdeck counts it from the Unix epoch
(`rate(1 hour)` fires on the hour, UTC), so the fire times it shows do not depend on a deploy time.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pyawscron.awscron import AWSCron
from pyawscron.commons import Commons

from flowdeck.triggers.run_ids import delivery_run_id

if TYPE_CHECKING:  # the definition package imports this module's checks: types only, no import cycle
    from flowdeck.definition.models import ScheduleTrigger, WorkflowDefinition

Loc = tuple[str | int, ...]

SCHEDULE_TRIGGER: Final = "schedule"
# pyawscron's years: a cron never fires after this one.
LAST_CRON_YEAR: Final = 2199

_RATE = re.compile(r"^rate\((\d+) (minute|minutes|hour|hours|day|days)\)$")
_AT = re.compile(r"^at\((\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})\)$")
_CRON = re.compile(r"^cron\((.*)\)$")
_UNIT_SECONDS = {"minute": 60, "hour": 3600, "day": 86400}

_MONTHS = ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"]
_WEEKDAYS = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"]
# (name, lowest, highest, names, extra forms allowed) per cron field, in order (EventBridge's table).
_FIELDS: tuple[tuple[str, int, int, list[str], str], ...] = (
    ("minutes", 0, 59, [], ""),
    ("hours", 0, 23, [], ""),
    ("day-of-month", 1, 31, [], "?LW"),
    ("month", 1, 12, _MONTHS, ""),
    ("day-of-week", 1, 7, _WEEKDAYS, "?L#"),
    ("year", 1970, LAST_CRON_YEAR, [], ""),
)


def _number(text: str, field: tuple[str, int, int, list[str], str]) -> int:
    name, low, high, names, _ = field
    upper = text.upper()
    if upper in names:
        return names.index(upper) + 1
    if not text.isdigit():
        raise ValueError(
            f"{name}: {text!r} is not a number" + (f" or one of {'/'.join(names)}" if names else "")
        )
    value = int(text)
    if not low <= value <= high:
        raise ValueError(f"{name}: {value} is outside {low}-{high}")
    return value


def _check_item(item: str, field: tuple[str, int, int, list[str], str]) -> None:
    """One comma-separated part of a cron field: *, n, a-b, x/y, L, nL, L-n, nW, d#n."""
    name, _, _, _, extra = field
    if item == "*":
        return
    if item == "?" and "?" in extra:
        return
    if "L" in extra and name == "day-of-month" and re.fullmatch(r"L(-\d{1,2})?", item):
        return
    if "L" in extra and name == "day-of-week" and re.fullmatch(r"[1-7]?L", item.upper()):
        return
    if "W" in extra and item.upper().endswith("W"):
        _number(item[:-1], field)
        return
    if "#" in extra and "#" in item:
        day, _, nth = item.partition("#")
        _number(day, field)
        if nth not in {"1", "2", "3", "4", "5"}:
            raise ValueError(f"{name}: {item!r}: the week after # is 1-5")
        return
    base, slash, step = item.partition("/")
    if slash and (not step.isdigit() or int(step) < 1):
        raise ValueError(f"{name}: {item!r}: the step after / is a positive number")
    if base == "*" and slash:
        return
    low_text, dash, high_text = base.partition("-")
    low = _number(low_text, field)
    if dash and _number(high_text, field) < low:
        raise ValueError(f"{name}: {item!r}: the range goes backwards")


def _check_cron(body: str) -> None:
    parts = body.split()
    if len(parts) != 6 or body != " ".join(parts):
        raise ValueError(
            "cron takes 6 fields separated by single spaces: "
            "minutes hours day-of-month month day-of-week year"
        )
    for text, field in zip(parts, _FIELDS, strict=True):
        if not text:
            raise ValueError(f"{field[0]}: empty")
        for item in text.split(","):
            if not item or ("?" in item and item != "?") or (item == "?" and len(text) > 1):
                raise ValueError(f"{field[0]}: {text!r} is not valid")
            _check_item(item, field)
    day_of_month, day_of_week = parts[2], parts[4]
    if (day_of_month == "?") == (day_of_week == "?"):
        raise ValueError("exactly one of day-of-month and day-of-week is '?' (e.g. cron(0 6 * * ? *))")


@dataclass(frozen=True)
class Expression:
    """A parsed schedule expression."""

    text: str
    kind: Literal["cron", "rate", "at"]
    cron: AWSCron | None = None
    every: timedelta | None = None
    at: datetime | None = None  # naive wall time, read in the trigger's timezone


def parse_expression(text: str) -> Expression:
    """Parse a Scheduler expression; raise ValueError saying what is wrong and how it is written."""
    if match := _RATE.match(text):
        value, unit = int(match[1]), match[2]
        if value < 1:
            raise ValueError("a rate is at least 1")
        if (value == 1) != (not unit.endswith("s")):
            raise ValueError(f"write rate({value} {unit.rstrip('s') if value == 1 else unit + 's'})")
        return Expression(text, "rate", every=timedelta(seconds=value * _UNIT_SECONDS[unit.rstrip("s")]))
    if match := _AT.match(text):
        try:
            when = datetime.fromisoformat(match[1])
        except ValueError:
            raise ValueError(f"{match[1]!r} is not a date and time") from None
        return Expression(text, "at", at=when)
    if match := _CRON.match(text):
        _check_cron(match[1])
        try:
            cron = AWSCron(match[1])
        except (ValueError, IndexError) as exc:  # the checks above should leave nothing for it to refuse
            raise ValueError(f"not a cron expression: {exc}") from None
        return Expression(text, "cron", cron=cron)
    raise ValueError(
        f"{text!r} is not a schedule expression: use cron(0 6 * * ? *), rate(15 minutes) "
        "or at(2026-12-31T23:00:00)"
    )


def parse_timezone(name: str) -> ZoneInfo:
    """An IANA time zone by name; ValueError if unknown."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"{name!r} is not an IANA time zone (e.g. UTC, Europe/Paris, America/New_York)"
        ) from None


# -- fire times ---------------------------------------------------------------------------------
def _days_in_month(cron: AWSCron, year: int, month: int) -> list[int]:
    """The days of one month a cron's day fields select (pyawscron's parsed fields and helpers)."""
    days_of_month: list[Any] = cron.days_of_month
    last = calendar.monthrange(year, month)[1]
    if not days_of_month:  # day-of-month is '?': the day-of-week field decides
        return [
            d
            for d in Commons.get_days_of_month_from_days_of_week(year, month, cron.days_of_week)
            if d <= last
        ]
    if days_of_month[0] == "L":
        return [last - int(days_of_month[1])]
    if days_of_month[0] == "W":
        day = int(days_of_month[1])
        return Commons.get_days_of_month_for_W(year, month, day) if day <= last else []
    return [d for d in days_of_month if d <= last]


def _cron_wall_times(cron: AWSCron, after: datetime) -> Iterator[datetime]:
    """Wall times (naive) a cron selects, strictly after the naive wall time `after`, in order."""
    start = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    for year in (y for y in cron.years if y >= start.year):
        for month in (m for m in cron.months if (year, m) >= (start.year, start.month)):
            for day in _days_in_month(cron, year, month):
                if (year, month, day) < (start.year, start.month, start.day):
                    continue
                for hour in cron.hours:
                    for minute in cron.minutes:
                        wall = datetime(year, month, day, hour, minute)
                        if wall >= start:
                            yield wall


def _instant(wall: datetime, zone: ZoneInfo) -> datetime | None:
    """The UTC instant of a wall time in `zone`: None if it does not exist, the first one if it repeats."""
    aware = wall.replace(tzinfo=zone, fold=0)
    instant = aware.astimezone(UTC)
    if instant.astimezone(zone).replace(tzinfo=None) != wall:  # skipped by a spring-forward gap
        return None
    return instant


def next_fire_times(trigger: ScheduleTrigger, after: datetime, count: int = 5) -> list[datetime]:
    """The next `count` instants (UTC) the schedule fires strictly after `after` (fewer if it ends)."""
    expression = parse_expression(trigger.cron)
    zone = parse_timezone(trigger.timezone)
    after = after.astimezone(UTC) if after.tzinfo else after.replace(tzinfo=UTC)
    if expression.every is not None:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        step = expression.every
        first = epoch + step * ((after - epoch) // step + 1)
        return [first + step * i for i in range(count)]
    if expression.at is not None:
        instant = _instant(expression.at, zone)
        return [instant] if instant is not None and instant > after and count > 0 else []
    if expression.cron is None:
        return []
    found: list[datetime] = []
    # From one hour of wall time back, so a wall time repeated by a fall-back is not missed.
    local_after = after.astimezone(zone).replace(tzinfo=None) - timedelta(hours=1)
    for wall in _cron_wall_times(expression.cron, local_after):
        if len(found) >= count:
            break
        instant = _instant(wall, zone)
        if instant is not None and instant > after:
            found.append(instant)
    return found


def due_fire_time(trigger: ScheduleTrigger, since: datetime, now: datetime) -> datetime | None:
    """The latest instant in (since, now] the schedule fires at, or None."""
    latest = None
    for instant in _fire_times_until(trigger, since, now):
        latest = instant
    return latest


def _fire_times_until(trigger: ScheduleTrigger, since: datetime, now: datetime) -> list[datetime]:
    found: list[datetime] = []
    cursor = since
    while True:
        batch = next_fire_times(trigger, cursor, 50)
        found += [t for t in batch if t <= now]
        if len(batch) < 50 or batch[-1] > now:
            return found
        cursor = batch[-1]


# -- what a firing sends ------------------------------------------------------------------------
def started_by(trigger: ScheduleTrigger) -> str:
    """Who a scheduled run is started by: the schedule itself."""
    return f"{SCHEDULE_TRIGGER}:{trigger.cron}"


def execution_input(trigger: ScheduleTrigger) -> dict[str, Any]:
    """The execution input a firing sends (the state machine fills the declared defaults)."""
    return {"inputs": dict(trigger.inputs), "trigger": SCHEDULE_TRIGGER, "started_by": started_by(trigger)}


def firing_run_id(workflow: str, trigger_index: int, fire_time: datetime) -> str:
    """One execution name per (workflow, trigger, fire time): a second firing of an instant is refused."""
    instant = fire_time.astimezone(UTC)
    return delivery_run_id(instant, SCHEDULE_TRIGGER, f"{workflow}\0{trigger_index}\0{instant.isoformat()}")


def schedule_triggers(definition: WorkflowDefinition) -> list[tuple[int, ScheduleTrigger]]:
    """(index in triggers, schedule) for each schedule trigger of a workflow."""
    return [(i, t.schedule) for i, t in enumerate(definition.triggers) if t.schedule is not None]


# -- definition checks --------------------------------------------------------------------------
def expression_problems(schedule: ScheduleTrigger, loc: Loc) -> list[tuple[Loc, str]]:
    """Bad expression or time zone of one schedule, each with its field."""
    problems: list[tuple[Loc, str]] = []
    for field, check in (("cron", parse_expression), ("timezone", parse_timezone)):
        try:
            check(getattr(schedule, field))
        except ValueError as exc:
            problems.append(((*loc, field), str(exc)))
    return problems


def trigger_view(
    definition: WorkflowDefinition, now: datetime | None = None, count: int = 5
) -> dict[str, Any]:
    """The next fire times of all a workflow's schedules (ISO 8601, UTC), for `GET .../triggers`."""
    if not (schedules := schedule_triggers(definition)):
        return {}
    after = now or datetime.now(UTC)
    times = sorted({t for _, s in schedules for t in next_fire_times(s, after, count)})[:count]
    return {"next_fire_times": [t.isoformat().replace("+00:00", "Z") for t in times]}
