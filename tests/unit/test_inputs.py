"""Run inputs checked at trigger time against the workflow's declared inputs."""

from __future__ import annotations

import pytest

from flowdeck.definition import WorkflowDefinition, parse_workflow
from flowdeck.definition.inputs import coerce_text, resolve_inputs
from flowdeck.errors import InvalidInputs

DEFINITION = """
name: deploy
inputs:
  environment: {type: string, default: production, enum: [production, staging]}
  replicas: {type: integer, default: 2}
  ratio: {type: number, default: 0.5}
  dry_run: {type: boolean, default: false}
  ticket: {type: string, required: true}
  labels: {type: object}
  hosts: {type: array}
steps:
  - id: a
    run: echo
"""


@pytest.fixture(scope="module")
def definition() -> WorkflowDefinition:
    return parse_workflow(DEFINITION, "deploy.yaml")


def invalid(definition: WorkflowDefinition, given: dict) -> str:
    with pytest.raises(InvalidInputs) as caught:
        resolve_inputs(definition, given)
    assert caught.value.code == "InvalidInputs"
    assert caught.value.status == 422
    return caught.value.message


def test_defaults_fill_what_is_not_given(definition):
    assert resolve_inputs(definition, {"ticket": "OPS-1"}) == {
        "environment": "production",
        "replicas": 2,
        "ratio": 0.5,
        "dry_run": False,
        "ticket": "OPS-1",
    }


def test_given_values_override_defaults(definition):
    resolved = resolve_inputs(
        definition,
        {"ticket": "OPS-1", "environment": "staging", "replicas": 5, "ratio": 1, "dry_run": True},
    )
    assert resolved["environment"] == "staging"
    assert resolved["replicas"] == 5
    assert resolved["ratio"] == 1
    assert resolved["dry_run"] is True


def test_object_and_array_inputs_pass_through(definition):
    resolved = resolve_inputs(definition, {"ticket": "T", "labels": {"team": "ops"}, "hosts": ["a", "b"]})
    assert resolved["labels"] == {"team": "ops"}
    assert resolved["hosts"] == ["a", "b"]


def test_resolve_does_not_change_the_given_dict(definition):
    given = {"ticket": "T"}
    resolve_inputs(definition, given)
    assert given == {"ticket": "T"}


def test_unknown_input_is_refused(definition):
    assert invalid(definition, {"ticket": "T", "replica": 3}) == "inputs.replica: unknown input"


def test_required_input_that_is_missing_is_refused(definition):
    assert invalid(definition, {}) == "inputs.ticket: required input is missing"


def test_required_input_with_a_default_may_be_omitted():
    definition = parse_workflow(
        "name: x\ninputs:\n  env: {type: string, required: true, default: dev}\nsteps: [{id: a, run: echo}]\n"
    )
    assert resolve_inputs(definition, {}) == {"env": "dev"}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("replicas", "3", "inputs.replicas: expected integer, got str"),
        ("replicas", 2.5, "inputs.replicas: expected integer, got float"),
        ("replicas", True, "inputs.replicas: expected integer, got bool"),
        ("ratio", False, "inputs.ratio: expected number, got bool"),
        ("ratio", "0.5", "inputs.ratio: expected number, got str"),
        ("dry_run", 1, "inputs.dry_run: expected boolean, got int"),
        ("dry_run", "true", "inputs.dry_run: expected boolean, got str"),
        ("ticket", 42, "inputs.ticket: expected string, got int"),
        ("ticket", None, "inputs.ticket: expected string, got NoneType"),
        ("labels", ["a"], "inputs.labels: expected object, got list"),
        ("hosts", "a,b", "inputs.hosts: expected array, got str"),
    ],
)
def test_value_of_the_wrong_type_is_refused(definition, name, value, message):
    given = {"ticket": "T", name: value}
    assert invalid(definition, given) == message


@pytest.mark.parametrize(
    ("name", "value"), [("ratio", 3), ("ratio", 0.25), ("dry_run", True), ("replicas", 0)]
)
def test_value_of_the_right_type_is_accepted(definition, name, value):
    assert resolve_inputs(definition, {"ticket": "T", name: value})[name] == value


def test_value_outside_the_enum_is_refused(definition):
    message = invalid(definition, {"ticket": "T", "environment": "dev"})
    assert message == "inputs.environment: must be one of ['production', 'staging']"


def test_every_bad_input_is_named_at_once(definition):
    message = invalid(definition, {"replicas": "x", "bogus": 1})
    assert message == (
        "inputs.bogus: unknown input; inputs.replicas: expected integer, got str; "
        "inputs.ticket: required input is missing"
    )


def test_workflow_without_inputs_resolves_to_nothing_and_refuses_any():
    definition = parse_workflow("name: x\nsteps: [{id: a, run: echo}]\n")
    assert resolve_inputs(definition, {}) == {}
    assert invalid(definition, {"x": 1}) == "inputs.x: unknown input"


# -- coerce_text: command-line `-i k=v` -----------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("replicas", "3", 3),
        ("replicas", "-1", -1),
        ("ratio", "0.75", 0.75),
        ("ratio", "2", 2),
        ("environment", "42", "42"),
        ("ticket", "true", "true"),
        ("labels", '{"team": "ops"}', {"team": "ops"}),
        ("hosts", '["a", "b"]', ["a", "b"]),
        ("dry_run", "true", True),
        ("dry_run", "TRUE", True),
        ("dry_run", "1", True),
        ("dry_run", "yes", True),
        ("dry_run", "on", True),
        ("dry_run", "false", False),
        ("dry_run", "0", False),
        ("dry_run", "no", False),
    ],
)
def test_coerce_text_turns_text_into_the_declared_type(definition, name, text, value):
    coerced = coerce_text(definition, name, text)
    assert coerced == value
    assert type(coerced) is type(value)


@pytest.mark.parametrize(("name", "text"), [("replicas", "three"), ("labels", "{oops"), ("hosts", "a,b")])
def test_coerce_text_leaves_text_it_cannot_read_for_validation_to_refuse(definition, name, text):
    assert coerce_text(definition, name, text) == text


def test_coerce_text_of_an_unknown_input_is_the_text(definition):
    assert coerce_text(definition, "nope", "5") == "5"


def test_coerced_values_resolve(definition):
    given = {
        name: coerce_text(definition, name, text) for name, text in {"ticket": "T", "replicas": "4"}.items()
    }
    assert resolve_inputs(definition, given)["replicas"] == 4
