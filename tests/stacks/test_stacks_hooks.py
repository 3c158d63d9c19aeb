"""The signed trigger endpoints on AWS: unsigned-by-IAM POST /hooks/*, their grants and the history table."""

from __future__ import annotations

from aws_cdk import assertions
from stack_helpers import as_list, policy_statements, resources_of

from flowdeck.stores.schema import DELIVERY_KEY_ATTRIBUTES
from stacks.api import APPROVAL_ROUTES, HOOKS_THROTTLE_BURST_LIMIT, HOOKS_THROTTLE_RATE_LIMIT


def _path_parts(template: assertions.Template) -> dict[str, str]:
    return {
        lid: r["Properties"]["PathPart"]
        for lid, r in resources_of(template, "AWS::ApiGateway::Resource").items()
    }


def test_only_post_on_the_two_hook_resources_skips_iam(api_template: assertions.Template) -> None:
    parts = _path_parts(api_template)
    # Besides the signed approval routes (test_stacks_notify.py checks the whole unauthenticated set).
    approval_parts = {path.rsplit("/", 1)[1] for path, _ in APPROVAL_ROUTES}
    open_methods = [
        m["Properties"]
        for m in resources_of(api_template, "AWS::ApiGateway::Method").values()
        if m["Properties"]["AuthorizationType"] != "AWS_IAM"
        # The dashboard's CORS preflights (a mock integration) are checked in test_stacks_notify.py.
        and m["Properties"]["HttpMethod"] != "OPTIONS"
        and parts[m["Properties"]["ResourceId"]["Ref"]] not in approval_parts
    ]

    assert sorted(parts[m["ResourceId"]["Ref"]] for m in open_methods) == ["github", "{wf}"]
    assert {(m["HttpMethod"], m["AuthorizationType"]) for m in open_methods} == {("POST", "NONE")}
    hooks = next(lid for lid, part in parts.items() if part == "hooks")
    for resource in resources_of(api_template, "AWS::ApiGateway::Resource").values():
        if resource["Properties"]["PathPart"] in {"github", "{wf}"}:
            assert resource["Properties"]["ParentId"] == {"Ref": hooks}


def test_hooks_are_throttled_below_the_stage(api_template: assertions.Template) -> None:
    (stage,) = resources_of(api_template, "AWS::ApiGateway::Stage").values()
    settings = {s["ResourcePath"]: s for s in stage["Properties"]["MethodSettings"]}

    for path in ("/~1hooks~1github", "/~1hooks~1{wf}"):
        assert settings[path]["HttpMethod"] == "POST"
        assert settings[path]["ThrottlingRateLimit"] == HOOKS_THROTTLE_RATE_LIMIT
        assert settings[path]["ThrottlingBurstLimit"] == HOOKS_THROTTLE_BURST_LIMIT


def test_handler_reads_only_webhook_secrets(api_template: assertions.Template) -> None:
    statements = policy_statements(api_template, "Handler")
    # Besides the two approval secrets, read by exact name (test_stacks_notify.py).
    secret_statements = [
        s
        for s in statements
        if any(a.startswith("secretsmanager:") for a in as_list(s["Action"]))
        and "secretsmanager:DescribeSecret" not in as_list(s["Action"])
    ]

    assert len(secret_statements) == 1
    (statement,) = secret_statements
    assert as_list(statement["Action"]) == ["secretsmanager:GetSecretValue"]
    (resource,) = as_list(statement["Resource"])
    assert resource["Fn::Join"][1][-1] == ":secret:flowdeck/webhooks/*"


def test_deliveries_table_is_encrypted_with_pitr_and_ttl(data_template: assertions.Template) -> None:
    (pk, _), (sk, _) = DELIVERY_KEY_ATTRIBUTES.items()
    data_template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": pk, "KeyType": "HASH"},
                {"AttributeName": sk, "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_handler_reads_and_writes_the_deliveries_table(api_template: assertions.Template) -> None:
    actions = {
        action
        for s in policy_statements(api_template, "Handler")
        if any("DeliveryStore" in str(r) for r in as_list(s["Resource"]))
        for action in as_list(s["Action"])
    }

    assert {"dynamodb:PutItem", "dynamodb:Query"} <= actions
