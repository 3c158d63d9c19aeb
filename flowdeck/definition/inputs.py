"""Validate inputs against the workflow's declared inputs: a run's at trigger time, defaults at load."""

from __future__ import annotations

from typing import Any

from flowdeck.definition.models import InputSpec, WorkflowDefinition
from flowdeck.errors import InvalidInputs

_PY_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
}


def value_problem(spec: InputSpec, value: Any) -> str | None:
    """Why `value` does not fit the input's declared type, or None."""
    types = _PY_TYPES[spec.type]
    is_bool = isinstance(value, bool)
    if (spec.type != "boolean" and is_bool) or not isinstance(value, types):
        return f"expected {spec.type}, got {type(value).__name__}"
    if spec.enum is not None and value not in spec.enum:
        return f"must be one of {spec.enum}"
    return None


def resolve_inputs(definition: WorkflowDefinition, given: dict[str, Any]) -> dict[str, Any]:
    """Declared defaults overlaid with `given`; raise InvalidInputs naming every bad field."""
    problems = [f"inputs.{name}: unknown input" for name in given if name not in definition.inputs]
    resolved = definition.input_defaults()
    for name, spec in definition.inputs.items():
        if name in given:
            if why := value_problem(spec, given[name]):
                problems.append(f"inputs.{name}: {why}")
            resolved[name] = given[name]
        elif spec.required and spec.default is None:
            problems.append(f"inputs.{name}: required input is missing")
    if problems:
        raise InvalidInputs("; ".join(problems))
    return resolved


def coerce_text(definition: WorkflowDefinition, name: str, text: str) -> Any:
    """Turn a command-line `k=v` value into the input's declared type."""
    spec = definition.inputs.get(name)
    return coerce_value(spec.type if spec else None, text)


def coerce_value(type_name: str | None, text: str) -> Any:
    """Text -> the declared type; text that does not parse stays text, for the API to refuse clearly."""
    import json

    if type_name is None or type_name == "string":
        return text
    try:
        return json.loads(text) if type_name != "boolean" else text.lower() in {"1", "true", "yes", "on"}
    except ValueError:
        return text
