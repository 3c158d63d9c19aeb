"""ApiStack: REST API with IAM authorization and its Lambda handler."""

from __future__ import annotations

import json

from aws_cdk import assertions
from aws_cdk.assertions import Match
from stack_helpers import as_list, policy_statements, resources_of, wildcard_actions

from flowdeck.constants import (
    ENV_APPROVAL_LINK_SECRET_NAME,
    ENV_ARTIFACTS_BUCKET,
    ENV_DASHBOARD_URL,
    ENV_DELIVERIES_TABLE,
    ENV_FRESH_CLUSTER,
    ENV_LOGS_TABLE,
    ENV_MANAGE_TRIGGERS,
    ENV_RUNS_TABLE,
    ENV_SCHEDULE_GROUP,
    ENV_SLACK_SECRET_NAME,
    ENV_STATE_MACHINE_ARN_PREFIX,
    ENV_STEPS_QUEUE_URL,
    ENV_USER_POOL_ID,
    ENV_WORKFLOWS_DIR,
)
from stacks.api import POWERTOOLS_LAYER_VERSION


def _handler(api_template: assertions.Template) -> dict:
    (function,) = resources_of(api_template, "AWS::Lambda::Function").values()
    return function["Properties"]


def test_every_method_requires_iam_sigv4_and_a_request_validator(api_template: assertions.Template) -> None:
    # The signed hooks (POST only, HMAC-checked) and approval routes (Slack signature, signed links)
    # are the exception: see test_stacks_hooks.py and test_stacks_notify.py.
    methods = [
        m
        for m in resources_of(api_template, "AWS::ApiGateway::Method").values()
        if m["Properties"]["AuthorizationType"] != "NONE"
    ]

    assert len(methods) == 2  # ANY on / and ANY on /{proxy+}
    for method in methods:
        assert method["Properties"]["AuthorizationType"] == "AWS_IAM"
        assert method["Properties"]["HttpMethod"] == "ANY"
        assert "RequestValidatorId" in method["Properties"]
    api_template.has_resource_properties("AWS::ApiGateway::Resource", {"PathPart": "{proxy+}"})
    api_template.has_resource_properties(
        "AWS::ApiGateway::RequestValidator", {"ValidateRequestBody": True, "ValidateRequestParameters": True}
    )


def test_stage_has_access_logs_execution_logs_and_tracing(api_template: assertions.Template) -> None:
    api_template.has_resource_properties(
        "AWS::ApiGateway::Stage",
        {
            "StageName": "v1",
            "TracingEnabled": True,
            "AccessLogSetting": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("caller"),
            },
            # Match.array_with: the signed hooks add their own throttling entries (test_stacks_hooks.py).
            "MethodSettings": Match.array_with(
                [
                    Match.object_like(
                        {"LoggingLevel": "INFO", "DataTraceEnabled": False, "MetricsEnabled": True}
                    )
                ]
            ),
        },
    )


def test_dependencies_layer_targets_the_handler_runtime(api_template: assertions.Template) -> None:
    api_template.has_resource_properties(
        "AWS::Lambda::LayerVersion",
        {"CompatibleRuntimes": ["python3.11"], "CompatibleArchitectures": ["x86_64"]},
    )


def test_handler_runs_the_api_module_with_powertools_and_config_env(
    api_template: assertions.Template,
) -> None:
    props = _handler(api_template)

    assert props["Handler"] == "lambdas.api.lambda_handler"
    assert props["Runtime"] == "python3.11"
    assert props["TracingConfig"] == {"Mode": "Active"}
    powertools, dependencies = props["Layers"]
    assert dependencies == {"Ref": next(iter(api_template.find_resources("AWS::Lambda::LayerVersion")))}
    assert powertools == {
        "Fn::Join": [
            "",
            [
                "arn:aws:lambda:",
                {"Ref": "AWS::Region"},
                f":017000801446:layer:AWSLambdaPowertoolsPythonV3-python311-x86_64:{POWERTOOLS_LAYER_VERSION}",
            ],
        ]
    }
    env = props["Environment"]["Variables"]
    assert set(env) == {
        ENV_RUNS_TABLE,
        ENV_STATE_MACHINE_ARN_PREFIX,
        ENV_WORKFLOWS_DIR,
        ENV_ARTIFACTS_BUCKET,
        ENV_LOGS_TABLE,
        ENV_DELIVERIES_TABLE,
        ENV_STEPS_QUEUE_URL,
        ENV_SLACK_SECRET_NAME,
        ENV_APPROVAL_LINK_SECRET_NAME,
        ENV_MANAGE_TRIGGERS,
        ENV_SCHEDULE_GROUP,
        # The dashboard's user pool and origin (FlowdeckWeb).
        ENV_USER_POOL_ID,
        ENV_DASHBOARD_URL,
        # A cancel stops the fresh steps' tasks there (fixture fresh-build has fresh steps).
        ENV_FRESH_CLUSTER,
        "POWERTOOLS_SERVICE_NAME",
    }
    assert env[ENV_WORKFLOWS_DIR] == "workflows"
    assert env[ENV_STATE_MACHINE_ARN_PREFIX] == {
        "Fn::Join": [
            "",
            [
                "arn:",
                {"Ref": "AWS::Partition"},
                ":states:",
                {"Ref": "AWS::Region"},
                ":",
                {"Ref": "AWS::AccountId"},
                ":stateMachine:flowdeck-",
            ],
        ]
    }


def _arn_suffixes(resources: list) -> set[str]:
    """The literal tail of each Fn::Join ARN (the part after the account id)."""
    return {resource["Fn::Join"][1][-1] for resource in resources}


def test_handler_starts_only_the_workflows_state_machines(api_template: assertions.Template) -> None:
    statements = policy_statements(api_template, "HandlerRole")
    by_action = {action: s for s in statements for action in as_list(s["Action"])}

    assert _arn_suffixes(as_list(by_action["states:StartExecution"]["Resource"])) == {
        ":stateMachine:flowdeck-fresh-build",
        ":stateMachine:flowdeck-nightly-report",
        ":stateMachine:flowdeck-quick-check",
    }
    assert _arn_suffixes(as_list(by_action["states:DescribeExecution"]["Resource"])) == {
        ":execution:flowdeck-fresh-build:*",
        ":execution:flowdeck-nightly-report:*",
        ":execution:flowdeck-quick-check:*",
    }
    assert wildcard_actions(statements) == {
        "states:SendTaskSuccess",
        "states:SendTaskFailure",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
    }
    # Builds ZIPs of a run's artifacts (put, multipart) but never deletes, and only under runs/.
    assert {"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"} <= set(by_action)
    assert not any(a.startswith("s3:Delete") for a in by_action)
    assert _arn_suffixes(as_list(by_action["s3:PutObject"]["Resource"])) == {"/runs/*"}


def test_handler_uses_its_own_role_without_managed_policies(api_template: assertions.Template) -> None:
    roles = resources_of(api_template, "AWS::IAM::Role")
    handler_roles = [r for k, r in roles.items() if "HandlerRole" in k]

    assert len(handler_roles) == 1
    assert "ManagedPolicyArns" not in handler_roles[0]["Properties"]


def test_handler_may_send_cleanup_messages_to_the_steps_queue_only(api_template: assertions.Template) -> None:
    # Cancel with cleanup sends one {"type": "cleanup"} message to the workers' queue.
    statements = [
        s for s in policy_statements(api_template, "HandlerRole") if "sqs:SendMessage" in as_list(s["Action"])
    ]

    assert len(statements) == 1
    assert "StepWorkers" in json.dumps(statements[0]["Resource"])
    assert not any(
        a.startswith("sqs:Receive") or a.startswith("sqs:Delete") for a in as_list(statements[0]["Action"])
    )


def test_handler_may_disable_and_enable_exactly_the_workflows_schedules_and_rules(
    api_template: assertions.Template,
) -> None:
    # PUT /workflows/{wf}/state: the fixture workflows have one schedule and one event rule.
    statements = policy_statements(api_template, "HandlerRole")
    by_action = {action: s for s in statements for action in as_list(s["Action"])}
    schedule, rule, pass_role = (
        by_action["scheduler:UpdateSchedule"],
        by_action["events:DisableRule"],
        by_action["iam:PassRole"],
    )

    assert sorted(as_list(schedule["Action"])) == ["scheduler:GetSchedule", "scheduler:UpdateSchedule"]
    assert len(as_list(schedule["Resource"])) == 1
    assert json.dumps(schedule["Resource"]).endswith(':schedule/flowdeck/nightly-report-0"]]}')
    assert sorted(as_list(rule["Action"])) == ["events:DisableRule", "events:EnableRule"]
    assert len(as_list(rule["Resource"])) == 1
    assert json.dumps(rule["Resource"]).endswith(':rule/flowdeck-quick-check-0"]]}')
    # PassRole of the schedules' own role only, and only to Scheduler (UpdateSchedule resends the target).
    assert json.dumps(pass_role["Resource"]).endswith(':role/flowdeck-schedules"]]}')
    assert pass_role["Condition"] == {"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}}
    env = _handler(api_template)["Environment"]["Variables"]
    assert (env[ENV_MANAGE_TRIGGERS], env[ENV_SCHEDULE_GROUP]) == ("true", "flowdeck")
