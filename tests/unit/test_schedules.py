"""Schedule triggers: expressions, time zones, next fire times across DST, and refusals at load."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime

import pytest

from flowdeck.definition import parse_workflow
from flowdeck.definition.models import ScheduleTrigger
from flowdeck.errors import InvalidDefinition
from flowdeck.triggers.schedules import (
    due_fire_time,
    execution_input,
    firing_run_id,
    next_fire_times,
    parse_expression,
    trigger_view,
)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def fires(cron: str, after: datetime, count: int = 3, timezone: str = "UTC") -> list[datetime]:
    return next_fire_times(ScheduleTrigger(cron=cron, timezone=timezone), after, count)


# -- cron ---------------------------------------------------------------------------------------
def test_daily_cron_fires_strictly_after_the_given_instant():
    assert fires("cron(0 6 * * ? *)", utc(2026, 3, 1, 6, 0)) == [
        utc(2026, 3, 2, 6),
        utc(2026, 3, 3, 6),
        utc(2026, 3, 4, 6),
    ]


def test_weekday_names_and_steps():
    # 2026-03-06 is a Friday: the next weekday quarter-hours are Monday's.
    assert fires("cron(0/15 9 ? * MON-FRI *)", utc(2026, 3, 6, 9, 50)) == [
        utc(2026, 3, 9, 9, 0),
        utc(2026, 3, 9, 9, 15),
        utc(2026, 3, 9, 9, 30),
    ]


def test_last_day_of_month_and_nth_weekday():
    assert fires("cron(0 10 L * ? *)", utc(2026, 2, 1), 2) == [utc(2026, 2, 28, 10), utc(2026, 3, 31, 10)]
    # March 2026 has five Mondays (2, 9, 16, 23, 30); April does not, June does (29).
    assert fires("cron(0 10 ? * MON#5 *)", utc(2026, 3, 1), 2) == [utc(2026, 3, 30, 10), utc(2026, 6, 29, 10)]


def test_february_29_waits_for_the_next_leap_year():
    assert fires("cron(0 0 29 2 ? *)", utc(2026, 3, 1), 2) == [utc(2028, 2, 29), utc(2032, 2, 29)]


def test_cron_that_ends_returns_fewer_times():
    assert fires("cron(0 0 1 1 ? 2027)", utc(2026, 3, 1), 3) == [utc(2027, 1, 1)]
    assert fires("cron(0 0 31 2 ? *)", utc(2026, 3, 1), 3) == []


# -- time zones and daylight saving time --------------------------------------------------------
def test_cron_is_read_in_the_trigger_timezone_across_spring_forward():
    # Paris moves from UTC+1 to UTC+2 on 2026-03-29: 06:00 local is 05:00Z, then 04:00Z.
    assert fires("cron(0 6 * * ? *)", utc(2026, 3, 27, 12), 3, "Europe/Paris") == [
        utc(2026, 3, 28, 5),
        utc(2026, 3, 29, 4),
        utc(2026, 3, 30, 4),
    ]


def test_wall_time_skipped_by_spring_forward_does_not_fire():
    # 02:30 does not exist in Paris on 2026-03-29 (02:00 -> 03:00).
    assert fires("cron(30 2 * * ? *)", utc(2026, 3, 27, 12), 3, "Europe/Paris") == [
        utc(2026, 3, 28, 1, 30),
        utc(2026, 3, 30, 0, 30),
        utc(2026, 3, 31, 0, 30),
    ]


def test_wall_time_repeated_by_fall_back_fires_once():
    # 02:30 happens twice in Paris on 2026-10-25 (03:00 -> 02:00): it fires at the first one only.
    assert fires("cron(30 2 * * ? *)", utc(2026, 10, 23, 12), 3, "Europe/Paris") == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]


def test_from_inside_the_repeated_hour_the_repeats_are_not_fired_again():
    # 00:45Z is 02:45 CEST; 01:00Z and 01:30Z are 02:00 and 02:30 again (CET): already fired.
    assert fires("cron(0/30 * * * ? *)", utc(2026, 10, 25, 0, 45), 2, "Europe/Paris") == [
        utc(2026, 10, 25, 2, 0),
        utc(2026, 10, 25, 2, 30),
    ]


def test_new_york_schedule_follows_its_own_dst_date():
    # New York springs forward on 2026-03-08: 09:00 local is 14:00Z, then 13:00Z.
    assert fires("cron(0 9 ? * * *)", utc(2026, 3, 6, 20), 3, "America/New_York") == [
        utc(2026, 3, 7, 14),
        utc(2026, 3, 8, 13),
        utc(2026, 3, 9, 13),
    ]


# -- rate and at --------------------------------------------------------------------------------
def test_rate_counts_from_the_epoch():
    assert fires("rate(15 minutes)", utc(2026, 3, 1, 10, 7, 30)) == [
        utc(2026, 3, 1, 10, 15),
        utc(2026, 3, 1, 10, 30),
        utc(2026, 3, 1, 10, 45),
    ]
    assert fires("rate(1 day)", utc(2026, 3, 1, 0, 0), 2) == [utc(2026, 3, 2), utc(2026, 3, 3)]
    assert fires("rate(2 hours)", utc(2026, 3, 1, 1, 59), 1) == [utc(2026, 3, 1, 2)]


def test_at_fires_once_in_its_timezone():
    trigger = ScheduleTrigger(cron="at(2026-12-31T23:00:00)", timezone="America/New_York")
    assert next_fire_times(trigger, utc(2026, 12, 1), 3) == [utc(2027, 1, 1, 4)]
    assert next_fire_times(trigger, utc(2027, 1, 1, 4), 3) == []


def test_due_fire_time_is_the_latest_instant_in_the_window():
    trigger = ScheduleTrigger(cron="rate(1 minute)")
    assert due_fire_time(trigger, utc(2026, 3, 1, 10, 0), utc(2026, 3, 1, 10, 0, 59)) is None
    assert due_fire_time(trigger, utc(2026, 3, 1, 10, 0), utc(2026, 3, 1, 10, 1)) == utc(2026, 3, 1, 10, 1)
    # A machine that slept through many fires fires the latest once, not all of them.
    assert due_fire_time(trigger, utc(2026, 3, 1, 10, 0), utc(2026, 3, 1, 13, 30, 5)) == utc(
        2026, 3, 1, 13, 30
    )


# -- refused expressions ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("cron(0 6 * * * *)", "exactly one of day-of-month and day-of-week is '?'"),
        ("cron(0 6 ? * ? *)", "exactly one of day-of-month and day-of-week is '?'"),
        ("cron(0 6 * * ?)", "cron takes 6 fields"),
        ("cron(0  6 * * ? *)", "cron takes 6 fields"),
        ("cron(60 6 * * ? *)", "minutes: 60 is outside 0-59"),
        ("cron(0 25 * * ? *)", "hours: 25 is outside 0-23"),
        ("cron(0 6 0 * ? *)", "day-of-month: 0 is outside 1-31"),
        ("cron(0 6 * 13 ? *)", "month: 13 is outside 1-12"),
        ("cron(0 6 ? * FOO *)", "day-of-week: 'FOO' is not a number or one of SUN/MON"),
        ("cron(0 6 ? * MON#6 *)", "the week after # is 1-5"),
        ("cron(0 6 10-2 * ? *)", "the range goes backwards"),
        ("cron(0/0 6 * * ? *)", "the step after / is a positive number"),
        ("cron(0 6 * * ? 1969)", "year: 1969 is outside 1970-2199"),
        ("rate(0 minutes)", "a rate is at least 1"),
        ("rate(1 minutes)", "write rate(1 minute)"),
        ("rate(5 minute)", "write rate(5 minutes)"),
        ("rate(5 weeks)", "is not a schedule expression"),
        ("0 6 * * ? *", "is not a schedule expression: use cron(0 6 * * ? *)"),
        ("at(2026-13-01T00:00:00)", "is not a date and time"),
    ],
)
def test_invalid_expression_is_refused_with_the_reason(expression: str, message: str):
    with pytest.raises(ValueError) as caught:
        parse_expression(expression)
    assert message in str(caught.value)


@pytest.mark.parametrize(
    "expression",
    [
        "cron(0 6 * * ? *)",
        "cron(5,35 8-17 ? JAN-MAR 2-6 *)",
        "cron(0 12 15W * ? *)",
        "cron(0 1 L-2 * ? *)",
        "cron(0 1 ? * 6L *)",
        "rate(1 hour)",
        "at(2027-01-01T00:00:00)",
    ],
)
def test_valid_expression_is_accepted(expression: str):
    assert parse_expression(expression).text == expression


# -- at definition load -------------------------------------------------------------------------
def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(textwrap.dedent(text).lstrip("\n"), "wf.yaml")
    return caught.value.problems


def test_broken_schedule_is_refused_with_file_line_and_field():
    problems = problems_of(
        """
        name: nightly
        inputs:
          size: {type: integer, default: 1}
        triggers:
          - manual: {}
          - schedule: {cron: "cron(0 6 * * * *)", timezone: Europe/Pariss, inputs: {size: big, colour: red}}
        steps:
          - id: a
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:6: triggers[1].schedule.cron: exactly one of day-of-month and day-of-week is '?' "
        "(e.g. cron(0 6 * * ? *))",
        "wf.yaml:6: triggers[1].schedule.timezone: 'Europe/Pariss' is not an IANA time zone "
        "(e.g. UTC, Europe/Paris, America/New_York)",
        "wf.yaml:6: triggers[1].schedule.inputs.size: expected integer, got str",
        "wf.yaml:6: triggers[1].schedule.inputs.colour: unknown input: declare it in inputs",
    ]


def test_schedule_must_give_required_inputs_without_default():
    problems = problems_of(
        """
        name: nightly
        inputs:
          target: {type: string, required: true}
        triggers:
          - schedule:
              cron: rate(1 hour)
        steps:
          - id: a
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:5: triggers[0].schedule.inputs: required input 'target' has no default: give it here"
    ]


def test_valid_schedule_loads():
    definition = parse_workflow(
        textwrap.dedent(
            """
            name: nightly
            inputs:
              target: {type: string, required: true}
            triggers:
              - schedule: {cron: "cron(0 6 * * ? *)", timezone: Europe/Paris, inputs: {target: prod}}
            steps:
              - id: a
                run: echo
            """
        ),
        "wf.yaml",
    )
    assert definition.triggers[0].schedule is not None


# -- what a firing sends ------------------------------------------------------------------------
def test_execution_input_carries_the_schedule_inputs_and_who_started_it():
    trigger = ScheduleTrigger(cron="cron(0 6 * * ? *)", inputs={"target": "prod"})
    assert execution_input(trigger) == {
        "inputs": {"target": "prod"},
        "trigger": "schedule",
        "started_by": "schedule:cron(0 6 * * ? *)",
    }


def test_firing_run_id_is_one_per_workflow_trigger_and_instant():
    instant = utc(2026, 3, 1, 6)
    run_id = firing_run_id("nightly", 0, instant)
    assert run_id.startswith("20260301-060000-schedule-")
    assert firing_run_id("nightly", 0, instant.astimezone()) == run_id
    others = {firing_run_id("nightly", 1, instant), firing_run_id("other", 0, instant)}
    others.add(firing_run_id("nightly", 0, utc(2026, 3, 2, 6)))
    assert run_id not in others and len(others) == 3
    assert len(run_id) <= 80


def test_trigger_view_merges_the_schedules_next_fire_times():
    definition = parse_workflow(
        textwrap.dedent(
            """
            name: twice
            triggers:
              - schedule: {cron: "cron(0 6 * * ? *)"}
              - schedule: {cron: "rate(12 hours)"}
              - manual: {}
            steps:
              - id: a
                run: echo
            """
        ),
        "wf.yaml",
    )

    view = trigger_view(definition, now=utc(2026, 3, 1, 7), count=4)

    assert view == {
        "next_fire_times": [
            "2026-03-01T12:00:00Z",
            "2026-03-02T00:00:00Z",
            "2026-03-02T06:00:00Z",
            "2026-03-02T12:00:00Z",
        ]
    }


def test_trigger_view_is_empty_without_schedules():
    definition = parse_workflow("name: plain\nsteps:\n  - id: a\n    run: echo\n", "wf.yaml")
    assert trigger_view(definition) == {}
