"""NotifyStack and the approvals wiring (issue 4): queue, notifier, SES, secrets, senders, signed routes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from stack_helpers import (
    FIXTURE_WORKFLOWS,
    STACK_NAMES,
    Synthesized,
    as_list,
    policy_statements,
    resources_of,
    wildcard_actions,
)

from flowdeck.approvals.notifier import MAX_DELIVERY_ATTEMPTS
from flowdeck.config import Settings
from flowdeck.constants import (
    APPROVAL_LINK_SECRET,
    APPROVALS_DLQ,
    APPROVALS_QUEUE,
    ASL_APPROVALS_QUEUE_URL,
    ENV_APPROVAL_LINK_SECRET_NAME,
    ENV_PUBLIC_API_URL,
    ENV_RUNS_TABLE,
    ENV_SES_SENDER,
    ENV_SLACK_SECRET_NAME,
    ENV_WORKFLOWS_DIR,
    SLACK_SECRET,
)
from stacks.api import HOOKS_THROTTLE_BURST_LIMIT, HOOKS_THROTTLE_RATE_LIMIT
from stacks.app_builder import NOTIFY_STACK, build_app
from stacks.notify import (
    BATCH_SIZE,
    DEFAULT_SES_SENDER,
    ENV_DASHBOARD_URL,
    ENV_SLACK_CHANNEL,
    MAX_RECEIVE_COUNT,
    NOTIFIER_TIMEOUT,
)

XRAY_ACTIONS = {"xray:PutTraceSegments", "xray:PutTelemetryRecords"}
UNAUTHENTICATED_ROUTES = {
    ("/hooks/github", "POST"),
    ("/hooks/{wf}", "POST"),
    ("/slack/interactions", "POST"),
    ("/approvals/{token}", "GET"),
    ("/approvals/{token}", "POST"),
}


@pytest.fixture(scope="module")
def notify_template(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[NOTIFY_STACK]


def _queues(template: assertions.Template) -> dict[str, dict[str, Any]]:
    """Queue name -> (logical id, properties)."""
    return {
        r["Properties"]["QueueName"]: {"id": lid, **r["Properties"]}
        for lid, r in resources_of(template, "AWS::SQS::Queue").items()
    }


def _notifier(template: assertions.Template) -> dict[str, Any]:
    (function,) = resources_of(template, "AWS::Lambda::Function").values()
    return dict(function["Properties"])


def _join_tail(value: Any) -> str:
    """The literal end of an Fn::Join (an ARN or URL built from pseudo parameters)."""
    return str(value["Fn::Join"][1][-1])


def test_approvals_queue_is_encrypted_ssl_only_with_a_dead_letter_queue(
    notify_template: assertions.Template,
) -> None:
    queues = _queues(notify_template)
    queue, dead_letters = queues[APPROVALS_QUEUE], queues[APPROVALS_DLQ]

    for props in (queue, dead_letters):
        assert props["SqsManagedSseEnabled"] is True
    assert queue["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": [dead_letters["id"], "Arn"]},
        "maxReceiveCount": MAX_RECEIVE_COUNT,
    }
    # The notifier gives up on a delivery itself first; the DLQ only gets what keeps crashing it.
    assert MAX_RECEIVE_COUNT > MAX_DELIVERY_ATTEMPTS
    assert queue["VisibilityTimeout"] >= 6 * NOTIFIER_TIMEOUT.to_seconds()
    denied = [
        statement
        for policy in resources_of(notify_template, "AWS::SQS::QueuePolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert sorted(s["Resource"]["Fn::GetAtt"][0] for s in denied) == sorted([queue["id"], dead_letters["id"]])


def test_notifier_takes_small_batches_with_partial_batch_failures(
    notify_template: assertions.Template,
) -> None:
    (mapping,) = resources_of(notify_template, "AWS::Lambda::EventSourceMapping").values()
    props = mapping["Properties"]

    assert props["EventSourceArn"] == {"Fn::GetAtt": [_queues(notify_template)[APPROVALS_QUEUE]["id"], "Arn"]}
    assert props["BatchSize"] == BATCH_SIZE
    assert props["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    function = _notifier(notify_template)
    assert function["Handler"] == "lambdas.notifier.lambda_handler"
    assert function["Timeout"] == NOTIFIER_TIMEOUT.to_seconds()


def test_notifier_environment_names_the_sender_secrets_and_the_api_url(
    notify_template: assertions.Template,
) -> None:
    env = _notifier(notify_template)["Environment"]["Variables"]

    assert env[ENV_SES_SENDER] == DEFAULT_SES_SENDER
    assert env[ENV_SLACK_SECRET_NAME] == SLACK_SECRET
    assert env[ENV_APPROVAL_LINK_SECRET_NAME] == APPROVAL_LINK_SECRET
    assert env[ENV_WORKFLOWS_DIR] == "workflows"
    assert "Fn::ImportValue" in json.dumps(env[ENV_RUNS_TABLE])
    # https://<rest api id>.execute-api.<region>.<suffix>/v1, no trailing slash (links append /approvals/..).
    url = env[ENV_PUBLIC_API_URL]["Fn::Join"][1]
    assert url[0] == "https://"
    assert url[1]["Fn::ImportValue"].startswith("FlowdeckApi:ExportsOutputRefRunsApi")
    assert any(".execute-api." in str(part) for part in url)
    assert url[-2:] == ["/", {"Fn::ImportValue": url[-1]["Fn::ImportValue"]}]
    assert "DeploymentStagev1" in url[-1]["Fn::ImportValue"]


def test_code_reads_the_secrets_and_sender_the_stack_creates() -> None:
    defaults = Settings.model_fields

    assert defaults["slack_secret_name"].default == SLACK_SECRET
    assert defaults["approval_link_secret_name"].default == APPROVAL_LINK_SECRET
    assert defaults["ses_sender"].default == DEFAULT_SES_SENDER


def test_ses_identity_is_the_sender(notify_template: assertions.Template) -> None:
    notify_template.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": DEFAULT_SES_SENDER})


def test_link_key_and_slack_secrets_by_name(notify_template: assertions.Template) -> None:
    secrets = {
        r["Properties"]["Name"]: r["Properties"]
        for r in resources_of(notify_template, "AWS::SecretsManager::Secret").values()
    }

    assert set(secrets) == {SLACK_SECRET, APPROVAL_LINK_SECRET}
    link_key = secrets[APPROVAL_LINK_SECRET]["GenerateSecretString"]
    assert link_key["PasswordLength"] == 64
    assert link_key["ExcludePunctuation"] is True
    slack = secrets[SLACK_SECRET]["GenerateSecretString"]
    # A random signing secret until the operator puts Slack's: nothing verifies before that.
    assert json.loads(slack["SecretStringTemplate"]) == {"bot_token": ""}
    assert slack["GenerateStringKey"] == "signing_secret"


def test_notifier_sends_from_the_identity_only_and_reads_only_the_two_secrets(
    notify_template: assertions.Template,
) -> None:
    statements = policy_statements(notify_template, "ApprovalNotifierHandlerRole")
    secret_ids = {
        r["Properties"]["Name"]: lid
        for lid, r in resources_of(notify_template, "AWS::SecretsManager::Secret").items()
    }

    ses = [s for s in statements if any(a.startswith("ses:") for a in as_list(s["Action"]))]
    assert len(ses) == 1
    assert set(as_list(ses[0]["Action"])) == {"ses:SendEmail", "ses:SendRawEmail"}
    (identity,) = as_list(ses[0]["Resource"])
    assert ":identity/" in json.dumps(identity)
    assert identity["Fn::Join"][1][-1] == {
        "Ref": next(iter(resources_of(notify_template, "AWS::SES::EmailIdentity")))
    }

    read = [s for s in statements if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))]
    assert {a for s in read for a in as_list(s["Action"])} == {
        "secretsmanager:GetSecretValue",
        "secretsmanager:DescribeSecret",
    }
    assert sorted(r["Ref"] for s in read for r in as_list(s["Resource"])) == sorted(secret_ids.values())

    assert wildcard_actions(statements) == {"states:SendTaskFailure"} | XRAY_ACTIONS
    assert not any(a.startswith("sqs:Send") for s in statements for a in as_list(s["Action"]))


def _state_machine_statements(workflows_template: assertions.Template) -> dict[str, list[dict[str, Any]]]:
    """Workflow name -> its state machine role's statements."""
    found = {}
    for resource in resources_of(workflows_template, "AWS::StepFunctions::StateMachine").values():
        role = resource["Properties"]["RoleArn"]["Fn::GetAtt"][0]
        name = resource["Properties"]["StateMachineName"].removeprefix("flowdeck-")
        found[name] = policy_statements(workflows_template, role)
    return found


def test_only_machines_with_an_approval_step_send_to_the_approvals_queue(
    workflows_template: assertions.Template,
) -> None:
    senders = {
        workflow
        for workflow, statements in _state_machine_statements(workflows_template).items()
        for s in statements
        if "sqs:SendMessage" in as_list(s["Action"])
        for resource in as_list(s["Resource"])
        if "Fn::Join" in resource and _join_tail(resource) == f":{APPROVALS_QUEUE}"
    }

    # nightly-report has the `review` approval step; quick-check has none.
    assert senders == {"nightly-report"}


def test_approval_state_is_bound_to_the_queue_by_name_without_a_heartbeat(
    workflows_template: assertions.Template,
) -> None:
    machines = {
        r["Properties"]["StateMachineName"]: r["Properties"]
        for r in resources_of(workflows_template, "AWS::StepFunctions::StateMachine").values()
    }

    bound = {
        name
        for name, props in machines.items()
        if ASL_APPROVALS_QUEUE_URL in props["DefinitionSubstitutions"]
    }
    assert bound == {"flowdeck-nightly-report"}
    url = machines["flowdeck-nightly-report"]["DefinitionSubstitutions"][ASL_APPROVALS_QUEUE_URL]
    # Built from the fixed name: no export of the notify stack (deployed later) is imported.
    assert url["Fn::Join"][1][0] == "https://sqs."
    assert _join_tail(url) == f"/{APPROVALS_QUEUE}"
    states = json.loads(machines["flowdeck-nightly-report"]["DefinitionString"])["States"]
    (approval,) = [
        s for s in states.values() if s.get("Parameters", {}).get("QueueUrl") == "${ApprovalsQueueUrl}"
    ]
    assert approval["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert approval["TimeoutSeconds"] == 12 * 3600
    assert "HeartbeatSeconds" not in approval


def test_no_stack_imports_from_the_notify_stack(synthesized: Synthesized) -> None:
    # It deploys last but one (after the API); an import of it from an earlier stack would be a cycle.
    for name in STACK_NAMES:
        template = json.dumps(assertions.Template.from_stack(synthesized.stacks[name]).to_json())
        assert f'"{NOTIFY_STACK}:' not in template, name


def _routes(api_template: assertions.Template) -> dict[tuple[str, str], dict[str, Any]]:
    """(full path, HTTP method) -> method properties."""
    resources = resources_of(api_template, "AWS::ApiGateway::Resource")

    def path(ref: dict[str, Any]) -> str:
        if "Fn::GetAtt" in ref:  # the root resource
            return ""
        resource = resources[ref["Ref"]]["Properties"]
        return f"{path(resource['ParentId'])}/{resource['PathPart']}"

    return {
        (path(m["Properties"]["ResourceId"]) or "/", m["Properties"]["HttpMethod"]): m["Properties"]
        for m in resources_of(api_template, "AWS::ApiGateway::Method").values()
    }


def test_unauthenticated_routes_are_exactly_the_hooks_slack_and_approval_links(
    api_template: assertions.Template,
) -> None:
    routes = _routes(api_template)
    open_routes = {route for route, props in routes.items() if props["AuthorizationType"] == "NONE"}

    # Plus the dashboard's CORS preflights (FlowdeckWeb): mock integrations that reach no code.
    preflights = {("/", "OPTIONS"), ("/{proxy+}", "OPTIONS")}
    assert open_routes == UNAUTHENTICATED_ROUTES | preflights
    assert {routes[route]["Integration"]["Type"] for route in preflights} == {"MOCK"}
    assert {props["AuthorizationType"] for route, props in routes.items() if route not in open_routes} == {
        "AWS_IAM"
    }
    for route in UNAUTHENTICATED_ROUTES:
        assert "RequestValidatorId" in routes[route]
    for http_method in ("GET", "POST"):
        assert routes[("/approvals/{token}", http_method)]["RequestParameters"] == {
            "method.request.path.token": True
        }


def test_signed_approval_routes_are_throttled_like_the_hooks(api_template: assertions.Template) -> None:
    (stage,) = resources_of(api_template, "AWS::ApiGateway::Stage").values()
    settings = {(s["ResourcePath"], s["HttpMethod"]): s for s in stage["Properties"]["MethodSettings"]}

    for path, http_method in [
        ("/~1slack~1interactions", "POST"),
        *[("/~1approvals~1{token}", m) for m in ("GET", "POST")],
    ]:
        assert settings[(path, http_method)]["ThrottlingRateLimit"] == HOOKS_THROTTLE_RATE_LIMIT
        assert settings[(path, http_method)]["ThrottlingBurstLimit"] == HOOKS_THROTTLE_BURST_LIMIT


def test_api_reads_the_approval_secrets_by_name_and_sends_no_email(api_template: assertions.Template) -> None:
    statements = policy_statements(api_template, "Handler")
    reads = [s for s in statements if "secretsmanager:DescribeSecret" in as_list(s["Action"])]

    assert {_join_tail(r) for s in reads for r in as_list(s["Resource"])} == {
        f":secret:{SLACK_SECRET}-??????",
        f":secret:{APPROVAL_LINK_SECRET}-??????",
    }
    assert not any(a.startswith("ses:") for s in statements for a in as_list(s["Action"]))
    # Approve and reject answer the waiting token.
    assert {"states:SendTaskSuccess", "states:SendTaskFailure"} <= wildcard_actions(statements)


def test_context_values_set_the_sender_the_link_base_and_the_slack_channel(tmp_path: Path) -> None:
    context = {
        "aws:cdk:bundling-stacks": [],
        "ses_sender": "approvals@acme.example",
        "public_api_url": "https://flowdeck.acme.example/",
        "slack_channel": "#deploys",
        "dashboard_url": "https://d111111abcdef8.cloudfront.net/",
    }
    app = build_app(FIXTURE_WORKFLOWS, cdk.App(outdir=str(tmp_path), context=context))
    template = assertions.Template.from_stack(cast(cdk.Stack, app.node.find_child(NOTIFY_STACK)))

    env = _notifier(template)["Environment"]["Variables"]
    assert env[ENV_SES_SENDER] == "approvals@acme.example"
    assert env[ENV_PUBLIC_API_URL] == "https://flowdeck.acme.example"
    assert env[ENV_SLACK_CHANNEL] == "#deploys"
    assert env[ENV_DASHBOARD_URL] == "https://d111111abcdef8.cloudfront.net"
    template.has_resource_properties("AWS::SES::EmailIdentity", {"EmailIdentity": "approvals@acme.example"})
    (ses,) = [s for s in policy_statements(template, "Handler") if "ses:SendEmail" in as_list(s["Action"])]
    assert ses["Resource"]["Fn::Join"][1][-1] == {
        "Ref": next(iter(resources_of(template, "AWS::SES::EmailIdentity")))
    }
