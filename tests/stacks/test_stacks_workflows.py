"""WorkflowsStack: one Standard state machine per workflow, wired to the table and the queue."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from aws_cdk import assertions
from stack_helpers import FIXTURE_WORKFLOWS, as_list, policy_statements, resources_of, wildcard_actions

from flowdeck.constants import (
    ASL_APPROVALS_QUEUE_URL,
    ASL_FRESH_CLUSTER,
    ASL_FRESH_PUBLIC_IP,
    ASL_FRESH_SECURITY_GROUP,
    ASL_FRESH_SUBNETS,
    ASL_RUNS_TABLE,
    ASL_STEPS_QUEUE_URL,
)
from flowdeck.definition import WorkflowDefinition, load_workflows
from statemachines import compile_workflow
from statemachines.fresh_step import fresh_shapes

WORKFLOWS = load_workflows(FIXTURE_WORKFLOWS)
# What CDK's StateMachine adds for CloudWatch Logs delivery and X-Ray: none takes a resource ARN.
LOGGING_AND_TRACING_ACTIONS = {
    "logs:CreateLogDelivery",
    "logs:GetLogDelivery",
    "logs:UpdateLogDelivery",
    "logs:DeleteLogDelivery",
    "logs:ListLogDeliveries",
    "logs:PutResourcePolicy",
    "logs:DescribeResourcePolicies",
    "logs:DescribeLogGroups",
    "xray:PutTraceSegments",
    "xray:PutTelemetryRecords",
    "xray:GetSamplingRules",
    "xray:GetSamplingTargets",
}


def _state_machines(workflows_template: assertions.Template) -> dict[str, dict[str, Any]]:
    """State machine name -> properties."""
    return {
        r["Properties"]["StateMachineName"]: r["Properties"]
        for r in resources_of(workflows_template, "AWS::StepFunctions::StateMachine").values()
    }


def _tasks(states: dict[str, Any]) -> list[dict[str, Any]]:
    """Every Task state, Parallel branches included."""
    found = []
    for state in states.values():
        if state["Type"] == "Task":
            found.append(state)
        for branch in state.get("Branches", []):
            found += _tasks(branch["States"])
    return found


def fresh_substitution_names(definition: WorkflowDefinition) -> list[str]:
    """The placeholders a workflow's fresh steps add (none without fresh steps)."""
    shapes = fresh_shapes([definition])
    if not shapes:
        return []
    fixed = [ASL_FRESH_CLUSTER, ASL_FRESH_SUBNETS, ASL_FRESH_SECURITY_GROUP, ASL_FRESH_PUBLIC_IP]
    return fixed + [shape.placeholder for shape in shapes.values()]


def test_one_standard_state_machine_per_workflow_named_with_the_prefix(
    workflows_template: assertions.Template,
) -> None:
    machines = _state_machines(workflows_template)

    assert sorted(machines) == ["flowdeck-fresh-build", "flowdeck-nightly-report", "flowdeck-quick-check"]
    for props in machines.values():
        assert props["StateMachineType"] == "STANDARD"
        assert props["TracingConfiguration"] == {"Enabled": True}
        assert props["LoggingConfiguration"]["Level"] == "ALL"
        assert props["LoggingConfiguration"]["IncludeExecutionData"] is False


@pytest.mark.parametrize("workflow", sorted(WORKFLOWS))
def test_definition_is_the_compiled_asl_with_placeholders_bound_to_table_and_queue(
    workflows_template: assertions.Template, workflow: str
) -> None:
    props = _state_machines(workflows_template)[f"flowdeck-{workflow}"]
    text = props["DefinitionString"]

    assert json.loads(text) == compile_workflow(WORKFLOWS[workflow])
    # CloudFormation substitutes DefinitionSubstitutions at deploy time: every placeholder the ASL
    # uses must be bound, and bound to this app's table name and queue URL (approvals: test_stacks_notify).
    has_approval = any(step.approval for step in WORKFLOWS[workflow].steps)
    expected = {ASL_RUNS_TABLE, ASL_STEPS_QUEUE_URL} | ({ASL_APPROVALS_QUEUE_URL} if has_approval else set())
    # Fresh steps' cluster, network and task families: tests/stacks/test_stacks_fresh.py.
    expected |= set(fresh_substitution_names(WORKFLOWS[workflow]))
    assert set(re.findall(r"\$\{(\w+)\}", text)) == expected
    substitutions = props["DefinitionSubstitutions"]
    assert set(substitutions) == expected
    assert re.fullmatch(
        r"FlowdeckData:ExportsOutputRefRunStoreTable\w+", substitutions[ASL_RUNS_TABLE]["Fn::ImportValue"]
    )
    assert re.fullmatch(
        r"FlowdeckCompute:ExportsOutputRefStepWorkersStepsQueue\w+",
        substitutions[ASL_STEPS_QUEUE_URL]["Fn::ImportValue"],
    )


@pytest.mark.parametrize(("workflow", "heartbeat"), [("nightly-report", 45), ("quick-check", 30)])
def test_step_tasks_carry_the_workflow_heartbeat(
    workflows_template: assertions.Template, workflow: str, heartbeat: int
) -> None:
    text = _state_machines(workflows_template)[f"flowdeck-{workflow}"]["DefinitionString"]
    waits = [
        t
        for t in _tasks(json.loads(text)["States"])
        if t["Resource"].endswith("waitForTaskToken")
        and t["Parameters"].get("QueueUrl") != "${ApprovalsQueueUrl}"
    ]

    assert '"HeartbeatSeconds"' in text
    # Approval steps wait for people, not a worker: no heartbeat (test_stacks_notify.py).
    assert len(waits) == len([step for step in WORKFLOWS[workflow].steps if not step.approval])
    assert {t["HeartbeatSeconds"] for t in waits} == {heartbeat}


def test_execution_logs_are_kept_about_as_long_as_the_artifacts(
    workflows_template: assertions.Template,
) -> None:
    retention = {
        r["Properties"]["LogGroupName"]: r["Properties"]["RetentionInDays"]
        for r in resources_of(workflows_template, "AWS::Logs::LogGroup").values()
        # The run-events Lambda's log group (this stack too) is unnamed, on the Lambda retention.
        if "LogGroupName" in r["Properties"]
    }

    assert retention == {
        "/aws/vendedlogs/states/flowdeck-fresh-build": 1,
        "/aws/vendedlogs/states/flowdeck-nightly-report": 3,  # 36 h -> 2 days -> next allowed value
        "/aws/vendedlogs/states/flowdeck-quick-check": 1,
    }


def test_state_machine_roles_update_the_table_and_send_to_the_queue_only(
    workflows_template: assertions.Template,
) -> None:
    roles = [k for k in resources_of(workflows_template, "AWS::IAM::Role") if "StateMachineRole" in k]
    assert len(roles) == len(WORKFLOWS)
    for role in roles:
        statements = policy_statements(workflows_template, role)
        # The only "*" resources are the suppressed logging/tracing actions (cdk-nag IAM5).
        assert wildcard_actions(statements) == LOGGING_AND_TRACING_ACTIONS
        scoped = [s for s in statements if "*" not in as_list(s["Resource"])]
        # A workflow with fresh steps also starts their tasks (tests/stacks/test_stacks_fresh.py).
        fresh = {"ecs:RunTask", "iam:PassRole"} if "freshbuild" in role else set()
        assert {a for s in scoped for a in as_list(s["Action"])} == {
            "dynamodb:UpdateItem",
            "sqs:SendMessage",
            "sqs:GetQueueAttributes",
            "sqs:GetQueueUrl",
        } | fresh
