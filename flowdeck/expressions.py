"""Step `if` conditions and message templates: parsed at load time, evaluated by the runner."""

from __future__ import annotations

import ast
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from simpleeval import EvalWithCompoundTypes, InvalidExpression

ROOT_NAMES = frozenset({"steps", "inputs", "run"})

_templates = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


class _Missing(str):
    """'' that stays '' however deep it is read: `steps.skipped.outputs.x` of a step without outputs."""

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        return self


_MISSING = _Missing()


class _Attrs(dict[str, Any]):
    """A dict read with dots, where a missing key reads as '' (as an unset output would)."""

    def __getattr__(self, name: str) -> Any:
        return _wrap(self.get(name, _MISSING))


def _wrap(value: Any) -> Any:
    if isinstance(value, dict):
        return _Attrs(value)
    return value


def condition_references(expression: str) -> set[str]:
    """Validate a condition's syntax and names; return the step ids it reads."""
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"not a valid condition: {exc.msg}") from None
    steps: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in ROOT_NAMES | {"True", "False", "None"}:
            raise ValueError(f"unknown name {node.id!r}: conditions read steps, inputs and run")
        if isinstance(node, ast.Call):
            raise ValueError("function calls are not allowed in conditions")
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "steps":
            steps.add(node.attr)
        # `steps['build-web']`: the only way to name a step whose id has a dash.
        if (
            isinstance(node, ast.Subscript)
            and isinstance(node.value, ast.Name)
            and node.value.id == "steps"
            and isinstance(node.slice, ast.Constant)
            and isinstance(node.slice.value, str)
        ):
            steps.add(node.slice.value)
    return steps


def evaluate_condition(expression: str, context: dict[str, Any]) -> bool:
    """True when the step should run; raise ValueError when the expression cannot be evaluated."""
    evaluator = EvalWithCompoundTypes(names={k: _wrap(v) for k, v in context.items()}, functions={})
    try:
        return bool(evaluator.eval(expression))
    except (InvalidExpression, SyntaxError, TypeError, ArithmeticError, KeyError, AttributeError) as exc:
        raise ValueError(f"condition {expression!r} failed: {exc}") from None


def check_template(text: str) -> None:
    try:
        _templates.parse(text)
    except TemplateSyntaxError as exc:
        raise ValueError(f"template error: {exc.message}") from None


def render_template(text: str, context: dict[str, Any]) -> str:
    """Render `{{ inputs.x }}`-style text; unknown names render as empty, never crash."""
    try:
        return _templates.from_string(text).render({k: _wrap(v) for k, v in context.items()})
    except Exception as exc:  # a user's template must not fail the step; show what went wrong instead
        return f"{text} [template error: {exc}]"


__all__ = [
    "StrictUndefined",
    "check_template",
    "condition_references",
    "evaluate_condition",
    "render_template",
]
