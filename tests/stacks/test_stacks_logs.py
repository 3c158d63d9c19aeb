"""The logs table (DataStack) and who may use it: workers write, the API reads."""

from __future__ import annotations

from typing import Any

from aws_cdk import assertions
from stack_helpers import resources_of

from flowdeck.constants import ENV_LOGS_TABLE, TTL_ATTRIBUTE
from stacks.api import API_HANDLER

LOGS_KEYS = [{"AttributeName": "run_id", "KeyType": "HASH"}, {"AttributeName": "seq", "KeyType": "RANGE"}]


def _logs_table(data_template: assertions.Template) -> tuple[str, dict[str, Any]]:
    found = [
        (name, r)
        for name, r in resources_of(data_template, "AWS::DynamoDB::Table").items()
        if r["Properties"]["KeySchema"] == LOGS_KEYS
    ]
    assert len(found) == 1
    return found[0]


def test_logs_table_is_run_and_numeric_seq_with_ttl_new_image_stream_pitr_and_sse(
    data_template: assertions.Template,
) -> None:
    _, table = _logs_table(data_template)
    props = table["Properties"]
    assert sorted(props["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == [
        {"AttributeName": "run_id", "AttributeType": "S"},
        {"AttributeName": "seq", "AttributeType": "N"},
    ]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": TTL_ATTRIBUTE, "Enabled": True}
    assert props["StreamSpecification"] == {"StreamViewType": "NEW_IMAGE"}
    assert props["PointInTimeRecoverySpecification"] == {"PointInTimeRecoveryEnabled": True}
    assert props["SSESpecification"] == {"SSEEnabled": True}
    assert (table["DeletionPolicy"], table["UpdateReplacePolicy"]) == ("Retain", "Retain")


def _actions_on_logs_table(template: assertions.Template) -> set[str]:
    actions: set[str] = set()
    for policy in resources_of(template, "AWS::IAM::Policy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            resources = (
                statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
            )
            if any("LogStoreTable" in str(resource) for resource in resources):
                listed = statement["Action"]
                actions |= set(listed if isinstance(listed, list) else [listed])
    return actions


def test_workers_can_put_and_query_the_logs_table(compute_template: assertions.Template) -> None:
    actions = _actions_on_logs_table(compute_template)
    assert {"dynamodb:PutItem", "dynamodb:Query"} <= actions


def test_api_reads_the_logs_table_only(api_template: assertions.Template) -> None:
    actions = _actions_on_logs_table(api_template)
    assert "dynamodb:Query" in actions
    assert not any(
        a.startswith(("dynamodb:Put", "dynamodb:Update", "dynamodb:Delete", "dynamodb:Batch"))
        and a != "dynamodb:BatchGetItem"
        for a in actions
    )
    handler = next(
        f
        for f in resources_of(api_template, "AWS::Lambda::Function").values()
        if f["Properties"]["Handler"] == API_HANDLER
    )
    assert "LogStoreTable" in str(handler["Properties"]["Environment"]["Variables"][ENV_LOGS_TABLE])
