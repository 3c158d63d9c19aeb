"""The compiled state machine and its readers agree on every message (flowdeck.messages is the contract)."""

from __future__ import annotations

import textwrap
from typing import Any

import pytest
from pydantic import BaseModel

from flowdeck.definition import parse_workflow
from flowdeck.messages import (
    APPROVAL_MESSAGE_TYPE,
    WAIT_MESSAGE_TYPE,
    ApprovalMessage,
    ApprovalSpec,
    StepMessage,
    StepSpec,
    WaitMessage,
)
from statemachines import compile_workflow

SEND_AND_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"

EVERY_KIND = """
name: contracts
runtime_config: {max_cost_usd: 1.25, retention_hours: 48}
steps:
  - id: build
    run: make
    timeout: 10m
    retries: {max: 2, interval: 5s}
    env: {CC: gcc}
    grace_period: 5
    artifacts: {upload: ["bin/*"]}
  - id: test
    command: [make, test]
    if: "inputs.x == 'y'"
    artifacts: {download: ["build:bin/*"]}
    on_failure: pause
    allow_skip: true
    pause_timeout: 2h
  - id: approve
    approval:
      approvers: {users: [jane@example.com]}
      channels: [inbox, slack]
      timeout: 1h
      message: "Ship {{ inputs.x }}?"
      slack_channel: "#releases"
  - id: tell
    notify: {slack: "#ci", message: "Built {{ run.id }}"}
"""

# What Step Functions puts where the compiled body names a JSONPath (`key.$`).
RUNTIME_VALUES: dict[str, Any] = {
    "token": "token-1",
    "run_id": "run-1",
    "retry_count": 1,
    "inputs": {"x": "y"},
    "reuse": ["build"],
    "entered_at": "2026-12-06T04:00:00Z",
    "attempt_base": 2,
}


def message_bodies() -> list[dict[str, Any]]:
    """Every message the compiled workflow sends, as the queue's reader receives it."""
    definition = parse_workflow(textwrap.dedent(EVERY_KIND).lstrip("\n"), "wf.yaml")
    states = compile_workflow(definition)["States"]
    bodies = []
    for state in states.values():
        if state.get("Resource") == SEND_AND_WAIT:
            body = state["Parameters"]["MessageBody"]
            bodies.append(
                {
                    (key[:-2] if key.endswith(".$") else key): (
                        RUNTIME_VALUES[key[:-2]] if key.endswith(".$") else value
                    )
                    for key, value in body.items()
                }
            )
    return bodies


def contract_for(body: dict[str, Any]) -> type[BaseModel]:
    return {WAIT_MESSAGE_TYPE: WaitMessage, APPROVAL_MESSAGE_TYPE: ApprovalMessage}.get(
        body.get("type"), StepMessage
    )


def field_names(model: type[BaseModel]) -> set[str]:
    return {info.alias or name for name, info in model.model_fields.items()}


def test_every_message_kind_is_compiled():
    kinds = sorted(contract_for(body).__name__ for body in message_bodies())
    assert kinds == ["ApprovalMessage", "StepMessage", "StepMessage", "StepMessage", "WaitMessage"]


@pytest.mark.parametrize(
    "body", message_bodies(), ids=lambda body: f"{body['step']}-{body.get('type', 'step')}"
)
def test_compiled_message_validates_and_every_field_is_read(body: dict[str, Any]):
    contract = contract_for(body)
    message = contract.model_validate(body)
    # The readers ignore unknown keys, so a field the compiler sends must be one they declare.
    assert set(body) <= field_names(contract)
    plain = set(body) - {"spec", "approval", "max_cost_usd"}
    assert message.model_dump(include=plain) == {key: body[key] for key in plain}
    if isinstance(message, StepMessage):
        assert set(body["spec"]) <= field_names(StepSpec)
        spec = message.spec.model_dump(by_alias=True)
        assert {key: spec[key] for key in body["spec"]} == body["spec"]
        assert str(message.max_cost_usd) == body["max_cost_usd"] == "1.25"
    if isinstance(message, ApprovalMessage):
        assert set(body["approval"]) <= field_names(ApprovalSpec)
        assert message.approval.model_dump() == body["approval"]
