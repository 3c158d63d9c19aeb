"""Small readers over synthesized templates, shared by the stack tests."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
from aws_cdk import assertions, cx_api

from stacks.app_builder import (
    API_STACK,
    COMPUTE_STACK,
    DATA_STACK,
    LIVE_STACK,
    NOTIFY_STACK,
    TRIGGERS_STACK,
    WEB_CONFIG_STACK,
    WEB_STACK,
    WORKFLOWS_STACK,
)

FIXTURE_WORKFLOWS = Path(__file__).parent / "fixtures" / "workflows"
STACK_NAMES = (
    DATA_STACK,
    COMPUTE_STACK,
    WORKFLOWS_STACK,
    API_STACK,
    LIVE_STACK,
    TRIGGERS_STACK,
    NOTIFY_STACK,
    WEB_STACK,
    WEB_CONFIG_STACK,
)


@dataclass(frozen=True)
class Synthesized:
    """The app, its stacks by name and the cloud assembly written by one synth."""

    app: cdk.App
    stacks: dict[str, cdk.Stack]
    assembly: cx_api.CloudAssembly


def resources_of(template: assertions.Template, resource_type: str) -> dict[str, dict[str, Any]]:
    """Logical id -> resource, for every resource of one type."""
    return cast(dict[str, dict[str, Any]], template.find_resources(resource_type))


def policy_statements(template: assertions.Template, role_fragment: str) -> list[dict[str, Any]]:
    """Every statement of the inline policies of the roles whose logical id contains `role_fragment`."""
    statements: list[dict[str, Any]] = []
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        roles = policy["Properties"].get("Roles", [])
        if any(role_fragment in role.get("Ref", "") for role in roles):
            statements += policy["Properties"]["PolicyDocument"]["Statement"]
    return statements


def as_list(value: Any) -> list[Any]:
    """IAM fields hold one value or a list of them."""
    return value if isinstance(value, list) else [value]


def wildcard_actions(statements: list[dict[str, Any]]) -> set[str]:
    """The actions granted on Resource "*"."""
    return {
        action
        for statement in statements
        if "*" in as_list(statement["Resource"])
        for action in as_list(statement["Action"])
    }
