"""The state machine's own DynamoDB writes retry a throttled or failed request (the integration retries
nothing on its own), and only those: a refused condition still goes to its Catch at once."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from flowdeck.catalog import Catalog
from statemachines import compile_workflow
from statemachines.asl import DYNAMODB_TRANSIENT_RETRY, UPDATE_ITEM

REPO = Path(__file__).parent.parent.parent
CATALOGS = [
    REPO / "workflows",
    REPO / "tests" / "fixtures" / "workflows",
    REPO / "tests" / "e2e" / "workflows",
]


def _states(states: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield name, state
        for branch in state.get("Branches", []):
            yield from _states(branch["States"])


def _definitions() -> Iterator[Any]:
    for folder in CATALOGS:
        yield from Catalog.from_dir(folder).definitions.values()


@pytest.mark.parametrize("definition", list(_definitions()), ids=lambda d: d.name)
def test_every_write_of_the_state_machine_retries_transient_dynamodb_errors(definition: Any) -> None:
    writes = {
        name: state
        for name, state in _states(compile_workflow(definition)["States"])
        if state.get("Resource") == UPDATE_ITEM
    }

    assert writes  # at least the run's start and end records
    assert {name: state["Retry"][0] for name, state in writes.items()} == dict.fromkeys(
        writes, DYNAMODB_TRANSIENT_RETRY
    )
    retried = {e for state in writes.values() for r in state["Retry"] for e in r["ErrorEquals"]}
    assert "DynamoDB.ConditionalCheckFailedException" not in retried
    assert "States.ALL" not in retried
