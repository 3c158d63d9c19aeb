"""Event triggers: the execution input a rule's transformer builds, and refusals at load."""

from __future__ import annotations

import json
import re
import textwrap
from datetime import UTC, datetime
from typing import Any

import pytest

from flowdeck.definition import WorkflowDefinition, parse_workflow
from flowdeck.errors import InvalidDefinition
from flowdeck.triggers.events import (
    event_run_id,
    event_triggers,
    execution_input,
    input_paths,
    input_template,
)

EVENT_ID = "6a7e8feb-b491-4cf7-a9f1-bf3703467718"
EVENT: dict[str, Any] = {
    "id": EVENT_ID,
    "source": "acme.incidents",
    "detail-type": "Incident Opened",
    "detail": {"severity": "high", "service": "checkout"},
}


def load(text: str) -> WorkflowDefinition:
    return parse_workflow(textwrap.dedent(text).lstrip("\n"), "wf.yaml")


def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        load(text)
    return caught.value.problems


WITH_EVENT_INPUT = """
name: responder
inputs:
  event: {type: object}
  region: {type: string, default: eu-west-1}
triggers:
  - event: {pattern: {source: [acme.incidents]}, trigger: incident}
steps:
  - id: a
    run: echo
"""

WITHOUT_EVENT_INPUT = """
name: reindex
triggers:
  - event: {pattern: {source: [acme.catalog], detail-type: [Product Changed]}}
steps:
  - id: a
    run: echo
"""


def transform(template: str, paths: dict[str, str], event: dict) -> dict:
    """EventBridge's input transformer, for the paths Flowdeck uses ($.field)."""
    for name, path in paths.items():
        value = event[path.removeprefix("$.")]
        template = template.replace(f"<{name}>", json.dumps(value) if isinstance(value, dict) else value)
    return json.loads(template)


def test_incident_trigger_sends_the_detail_as_the_event_input():
    definition = load(WITH_EVENT_INPUT)
    [(index, trigger)] = event_triggers(definition)

    built = transform(input_template(definition, trigger), input_paths(definition), EVENT)

    assert built == {
        "inputs": {"event": {"severity": "high", "service": "checkout"}},
        "trigger": "incident",
        "started_by": "acme.incidents/Incident Opened",
        "event_id": EVENT_ID,
    }
    assert built == execution_input(definition, trigger, EVENT)
    assert index == 0


def test_workflow_without_event_input_gets_no_inputs_from_the_event():
    definition = load(WITHOUT_EVENT_INPUT)
    [(_, trigger)] = event_triggers(definition)

    assert "detail" not in input_paths(definition)
    built = transform(input_template(definition, trigger), input_paths(definition), EVENT)

    assert built["inputs"] == {}
    assert built["trigger"] == "event"
    assert built == execution_input(definition, trigger, EVENT)


def test_event_run_id_is_one_per_event_and_trigger_and_starts_with_its_time():
    seen = datetime(2026, 12, 6, 3, 47, 9, tzinfo=UTC)
    run_id = event_run_id("responder", 0, EVENT_ID, seen)
    assert run_id == event_run_id("responder", 0, EVENT_ID, seen)
    assert run_id != event_run_id("responder", 1, EVENT_ID, seen)
    assert run_id != event_run_id("responder", 0, "another-event", seen)
    assert re.fullmatch(r"20261206-034709-event-[0-9a-f]{12}", run_id)
    assert run_id < event_run_id("responder", 0, "a-later-event", seen.replace(second=10))


def test_pattern_values_must_be_lists():
    problems = problems_of(
        """
        name: responder
        triggers:
          - event: {pattern: {source: acme.incidents}}
          - event: {pattern: {}}
          - event: {pattern: {sorce: [acme.incidents]}}
        steps:
          - id: a
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:3: triggers[0].event.pattern: pattern.source: values to match go in a non-empty list, "
        "e.g. source: [acme.incidents]",
        "wf.yaml:4: triggers[1].event.pattern: pattern: a pattern is a non-empty mapping of event fields "
        "to lists of values",
        "wf.yaml:5: triggers[2].event.pattern: pattern.sorce: not a field of an event: use version, id, "
        "detail-type, source, account, time, region, resources, detail",
    ]


def test_event_input_must_be_an_object_and_required_inputs_need_defaults():
    problems = problems_of(
        """
        name: responder
        inputs:
          event: {type: string}
          target: {type: string, required: true}
        triggers:
          - event: {pattern: {source: [acme.incidents]}, trigger: incident}
        steps:
          - id: a
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:6: triggers[0].event: required input 'target' has no default and an event cannot give it",
        "wf.yaml:3: inputs.event.type: the 'event' input receives the event's detail: make it type object",
    ]


def test_unknown_trigger_kind_is_refused():
    problems = problems_of(
        """
        name: responder
        triggers:
          - event: {pattern: {source: [acme.incidents]}, trigger: page}
        steps:
          - id: a
            run: echo
        """
    )
    assert len(problems) == 1 and problems[0].startswith("wf.yaml:3: triggers[0].event.trigger:")
