"""`-i KEY=VALUE` options as run inputs, typed as the workflow declares them (start and retry)."""

from __future__ import annotations

from typing import Any

import typer

from flowdeck.definition.inputs import coerce_value


def parse_inputs(pairs: list[str], declared: dict[str, Any]) -> dict[str, Any]:
    """`-i k=v` pairs, typed as the workflow declares (unknown names stay text for the API to refuse)."""
    inputs: dict[str, Any] = {}
    for pair in pairs:
        name, sep, text = pair.partition("=")
        if not sep or not name.strip():
            raise typer.BadParameter(f"expected KEY=VALUE, got {pair!r}", param_hint="'-i' / '--input'")
        name = name.strip()
        inputs[name] = coerce_value((declared.get(name) or {}).get("type"), text)
    return inputs
