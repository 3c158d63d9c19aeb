"""Event triggers: an EventBridge rule per `triggers[].event` starts the workflow's state machine.

The rule's target input transformer builds the execution input (the same template on AWS and
locally): `{"inputs": {...}, "trigger": "event"|"incident", "started_by": "<source>/<detail-type>",
"event_id": "<id>"}`. Event fields become inputs in one explicit way only: a workflow that declares
an input named `event` (type object) gets the event's `detail` in it; every other input takes its
declared default, so a workflow with an event trigger may not have a required input without one.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from flowdeck.triggers.run_ids import delivery_run_id

if TYPE_CHECKING:  # the definition package imports this module's checks: types only, no import cycle
    from flowdeck.definition.models import EventTrigger, WorkflowDefinition

Loc = tuple[str | int, ...]

EVENT_INPUT: Final = "event"
# Input transformer paths (names: letters, digits, _ and -), the same on AWS and locally.
INPUT_PATHS: Final = {"source": "$.source", "detailType": "$.detail-type", "id": "$.id", "detail": "$.detail"}
_DETAIL_SLOT: Final = "\0detail\0"
# The fields of an EventBridge event a pattern can match at the top level (a typo would never match).
EVENT_FIELDS: Final = (
    "version",
    "id",
    "detail-type",
    "source",
    "account",
    "time",
    "region",
    "resources",
    "detail",
)


def event_triggers(definition: WorkflowDefinition) -> list[tuple[int, EventTrigger]]:
    """(index in triggers, event trigger) for each event trigger of a workflow."""
    return [(i, t.event) for i, t in enumerate(definition.triggers) if t.event is not None]


def takes_event_input(definition: WorkflowDefinition) -> bool:
    """Whether the workflow declares the `event` input that receives an event's detail."""
    return EVENT_INPUT in definition.inputs


def input_paths(definition: WorkflowDefinition) -> dict[str, str]:
    """The InputPathsMap of the rule's target: only the paths its template uses."""
    used = (
        INPUT_PATHS
        if takes_event_input(definition)
        else {k: v for k, v in INPUT_PATHS.items() if k != "detail"}
    )
    return dict(used)


def input_template(definition: WorkflowDefinition, trigger: EventTrigger) -> str:
    """The InputTemplate of the rule's target: the execution input with <placeholders>."""
    body = {
        "inputs": {EVENT_INPUT: _DETAIL_SLOT} if takes_event_input(definition) else {},
        "trigger": trigger.trigger,
        "started_by": "<source>/<detailType>",
        "event_id": "<id>",
    }
    # The detail is an object: its placeholder stands unquoted so the JSON is inserted as JSON.
    return json.dumps(body).replace(json.dumps(_DETAIL_SLOT), "<detail>")


def execution_input(
    definition: WorkflowDefinition, trigger: EventTrigger, event: dict[str, Any]
) -> dict[str, Any]:
    """What the input transformer builds for `event` (an EventBridge event as delivered)."""
    inputs = {EVENT_INPUT: event.get("detail", {})} if takes_event_input(definition) else {}
    return {
        "inputs": inputs,
        "trigger": trigger.trigger,
        "started_by": f"{event.get('source', '')}/{event.get('detail-type', '')}",
        "event_id": str(event.get("id", "")),
    }


def event_run_id(workflow: str, trigger_index: int, event_id: str, seen: datetime) -> str:
    """One execution name per (workflow, trigger, event id), led by when the event was first seen
    (`Deliveries.first_seen`): a redelivered event starts one run."""
    return delivery_run_id(seen, "event", f"{workflow}\0{trigger_index}\0{event_id}")


def _pattern_problem(pattern: Any, path: str) -> str | None:
    if not isinstance(pattern, dict) or not pattern:
        return f"{path}: a pattern is a non-empty mapping of event fields to lists of values"
    for key, value in pattern.items():
        where = f"{path}.{key}"
        if isinstance(value, dict):
            if why := _pattern_problem(value, where):
                return why
        elif not isinstance(value, list) or not value:
            return f"{where}: values to match go in a non-empty list, e.g. source: [acme.incidents]"
    return None


def _top_level_problem(pattern: Any) -> str | None:
    unknown = [key for key in pattern if key not in EVENT_FIELDS] if isinstance(pattern, dict) else []
    if unknown:
        return f"pattern.{unknown[0]}: not a field of an event: use {', '.join(EVENT_FIELDS)}"
    return _pattern_problem(pattern, "pattern")


def event_problems(definition: WorkflowDefinition) -> list[tuple[Loc, str]]:
    """Bad patterns and inputs an event could never fill, each with its field."""
    problems: list[tuple[Loc, str]] = []
    triggers = event_triggers(definition)
    for index, trigger in triggers:
        if why := _top_level_problem(trigger.pattern):
            problems.append((("triggers", index, "event", "pattern"), why))
        for name, spec in definition.inputs.items():
            if name != EVENT_INPUT and spec.required and spec.default is None:
                problems.append(
                    (
                        ("triggers", index, "event"),
                        f"required input {name!r} has no default and an event cannot give it",
                    )
                )
    event_spec = definition.inputs.get(EVENT_INPUT)
    if triggers and event_spec is not None and event_spec.type != "object":
        problems.append(
            (
                ("inputs", EVENT_INPUT, "type"),
                "the 'event' input receives the event's detail: make it type object",
            )
        )
    return problems
