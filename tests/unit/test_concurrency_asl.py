"""The state machine of a concurrency-limited workflow never starts a run cancelled while queued."""

from __future__ import annotations

import textwrap
from typing import Any

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


def test_a_limited_workflow_records_the_start_only_of_a_run_not_cancelled() -> None:
    state = record_start(1)

    parameters = state["Parameters"]
    assert parameters["ConditionExpression"] == "attribute_not_exists(#status) OR #status <> :cancelled"
    assert parameters["ExpressionAttributeValues"][":cancelled"] == {"S": "cancelled"}
    assert parameters["ExpressionAttributeNames"]["#status"] == "status"
    assert state["Catch"] == [
        {
            "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
            "ResultPath": None,
            "Next": "RunNotRunning",
        }
    ]


def test_an_unlimited_workflow_keeps_the_unconditional_start_record() -> None:
    state = record_start(0)

    assert "ConditionExpression" not in state["Parameters"]
    assert ":cancelled" not in state["Parameters"]["ExpressionAttributeValues"]
    assert "Catch" not in state
