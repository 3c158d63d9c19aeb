"""The state machine never starts a run that ended before its execution recorded it."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest

from flowdeck.definition import parse_workflow
from statemachines import compile_workflow

WORKFLOW = """
name: one-at-a-time
runtime_config:
  concurrency: {{max_runs: {max_runs}, on_limit: queue}}
steps:
  - id: work
    run: echo hi
"""


def record_start(max_runs: int) -> dict[str, Any]:
    definition = parse_workflow(textwrap.dedent(WORKFLOW.format(max_runs=max_runs)).lstrip("\n"), "wf.yaml")
    return dict(compile_workflow(definition)["States"]["RecordRunStart"])


@pytest.mark.parametrize("max_runs", [0, 1])
def test_every_workflow_records_the_start_only_of_a_run_not_ended(max_runs: int) -> None:
    # The start path records runs before StartExecution: one cancelled (or recorded failed) before
    # its execution got here must not be set running again, limited workflow or not.
    state = record_start(max_runs)

    parameters = state["Parameters"]
    assert (
        parameters["ConditionExpression"] == "attribute_not_exists(#status) OR #status IN (:running, :queued)"
    )
    assert parameters["ExpressionAttributeValues"][":queued"] == {"S": "queued"}
    assert parameters["ExpressionAttributeNames"]["#status"] == "status"
    assert state["Catch"] == [
        {
            "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
            "ResultPath": None,
            "Next": "RunNotRunning",
        }
    ]
