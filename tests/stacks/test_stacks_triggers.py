"""Triggers stack: Scheduler schedules and EventBridge rules that start the workflows' state machines."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import assertions
from stack_helpers import FIXTURE_WORKFLOWS, as_list, policy_statements, resources_of

from flowdeck.definition import load_workflows
from flowdeck.triggers import events, schedules
from flowdeck.triggers.switch import SCHEDULE_GROUP, rule_name, schedule_name
from stacks.app_builder import TRIGGERS_STACK

DEFINITIONS = load_workflows(FIXTURE_WORKFLOWS)


@pytest.fixture(scope="module")
def triggers_template(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[TRIGGERS_STACK]


def only(resources: dict[str, dict[str, Any]]) -> tuple[str, dict[str, Any]]:
    assert len(resources) == 1, list(resources)
    return next(iter(resources.items()))


def state_machine_arn_suffix(arn: Any) -> str:
    """The literal tail of a Fn::Join'ed ARN (the part after the account)."""
    return str(arn["Fn::Join"][1][-1])


def dlq_id(template: assertions.Template) -> str:
    return only(resources_of(template, "AWS::SQS::Queue"))[0]


def test_schedule_starts_its_workflow_with_the_schedule_input(triggers_template: assertions.Template):
    [(_, trigger)] = schedules.schedule_triggers(DEFINITIONS["nightly-report"])
    _, schedule = only(resources_of(triggers_template, "AWS::Scheduler::Schedule"))
    props = schedule["Properties"]
    target = props["Target"]

    assert props["ScheduleExpression"] == "cron(0 6 * * ? *)"
    assert props["ScheduleExpressionTimezone"] == "Europe/Paris"
    assert props["FlexibleTimeWindow"] == {"Mode": "OFF"}
    assert state_machine_arn_suffix(target["Arn"]) == ":stateMachine:flowdeck-nightly-report"
    assert (
        json.loads(target["Input"])
        == schedules.execution_input(trigger)
        == {
            "inputs": {"audience": "board"},
            "trigger": "schedule",
            "started_by": "schedule:cron(0 6 * * ? *)",
        }
    )
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id(triggers_template), "Arn"]}}


def test_scheduler_role_may_only_start_that_workflow_and_write_the_dlq(
    triggers_template: assertions.Template,
):
    _, schedule = only(resources_of(triggers_template, "AWS::Scheduler::Schedule"))
    role_id = schedule["Properties"]["Target"]["RoleArn"]["Fn::GetAtt"][0]
    role = resources_of(triggers_template, "AWS::IAM::Role")[role_id]
    [trust] = role["Properties"]["AssumeRolePolicyDocument"]["Statement"]

    statements = policy_statements(triggers_template, role_id)

    assert trust["Principal"] == {"Service": "scheduler.amazonaws.com"}
    assert "aws:SourceAccount" in trust["Condition"]["StringEquals"]
    assert sorted((s["Action"], json.dumps(s["Resource"])) for s in statements) == sorted(
        [
            ("sqs:SendMessage", json.dumps({"Fn::GetAtt": [dlq_id(triggers_template), "Arn"]})),
            ("states:StartExecution", json.dumps(schedule["Properties"]["Target"]["Arn"])),
        ]
    )


def test_event_rule_matches_the_pattern_and_builds_the_execution_input(
    triggers_template: assertions.Template,
):
    definition = DEFINITIONS["quick-check"]
    [(_, trigger)] = events.event_triggers(definition)
    _, rule = only(resources_of(triggers_template, "AWS::Events::Rule"))
    [target] = rule["Properties"]["Targets"]

    assert rule["Properties"]["EventPattern"] == {
        "source": ["acme.incidents"],
        "detail": {"severity": ["high", "critical"]},
    }
    assert state_machine_arn_suffix(target["Arn"]) == ":stateMachine:flowdeck-quick-check"
    assert target["InputTransformer"] == {
        "InputPathsMap": events.input_paths(definition),
        "InputTemplate": events.input_template(definition, trigger),
    }
    assert '"trigger": "incident"' in target["InputTransformer"]["InputTemplate"]
    assert target["RetryPolicy"] == {"MaximumEventAgeInSeconds": 3600, "MaximumRetryAttempts": 3}
    assert target["DeadLetterConfig"] == {"Arn": {"Fn::GetAtt": [dlq_id(triggers_template), "Arn"]}}


def test_event_rule_role_may_only_start_that_workflow(triggers_template: assertions.Template):
    _, rule = only(resources_of(triggers_template, "AWS::Events::Rule"))
    [target] = rule["Properties"]["Targets"]
    role_id = target["RoleArn"]["Fn::GetAtt"][0]

    statements = policy_statements(triggers_template, role_id)

    assert [(s["Action"], s["Resource"]) for s in statements] == [("states:StartExecution", target["Arn"])]


def test_dead_letter_queue_is_encrypted_tls_only_and_writable_by_the_rule_only(
    triggers_template: assertions.Template,
):
    queue_id, queue = only(resources_of(triggers_template, "AWS::SQS::Queue"))
    _, policy = only(resources_of(triggers_template, "AWS::SQS::QueuePolicy"))
    rule_id, _ = only(resources_of(triggers_template, "AWS::Events::Rule"))
    statements = policy["Properties"]["PolicyDocument"]["Statement"]

    assert queue["Properties"]["SqsManagedSseEnabled"] is True
    assert {"Bool": {"aws:SecureTransport": "false"}} in [
        s.get("Condition") for s in statements if s["Effect"] == "Deny"
    ]
    [allow] = [s for s in statements if s["Effect"] == "Allow"]
    assert allow["Principal"] == {"Service": "events.amazonaws.com"}
    assert as_list(allow["Action"]) == ["sqs:SendMessage"]
    assert allow["Condition"] == {"ArnEquals": {"aws:SourceArn": {"Fn::GetAtt": [rule_id, "Arn"]}}}
    assert allow["Resource"] == {"Fn::GetAtt": [queue_id, "Arn"]}


def test_schedules_and_rules_carry_the_names_pausing_disables(triggers_template: assertions.Template):
    _, schedule = only(resources_of(triggers_template, "AWS::Scheduler::Schedule"))
    _, rule = only(resources_of(triggers_template, "AWS::Events::Rule"))
    _, group = only(resources_of(triggers_template, "AWS::Scheduler::ScheduleGroup"))
    [_role] = [
        r
        for r in resources_of(triggers_template, "AWS::IAM::Role").values()
        if r["Properties"].get("RoleName") == "flowdeck-schedules"
    ]

    assert schedule["Properties"]["Name"] == schedule_name("nightly-report", 0) == "nightly-report-0"
    assert group["Properties"]["Name"] == SCHEDULE_GROUP
    assert rule["Properties"]["Name"] == rule_name("quick-check", 0) == "flowdeck-quick-check-0"
    assert json.dumps(schedule["Properties"]["Target"]["RoleArn"]).count("SchedulesRole") == 1


def test_long_workflow_names_still_give_valid_trigger_names() -> None:
    long = "w" * 64
    names = [schedule_name(long, 0), rule_name(long, 12), schedule_name("w" * 63, 1)]

    assert all(len(name) <= 64 for name in names)
    assert len(set(names)) == 3 and names[1].startswith("flowdeck-w") and names[1].endswith("-12")
