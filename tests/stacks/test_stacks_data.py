"""DataStack: the runs table and the artifacts bucket."""

from __future__ import annotations

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from stack_helpers import resources_of

from flowdeck.constants import PK, SK, TTL_ATTRIBUTE
from flowdeck.stores.schema import GLOBAL_INDEXES, KEY_ATTRIBUTES, create_table_kwargs
from stacks.data import HISTORY_INDEXES_CONTEXT, RunStore, retention_days


@pytest.mark.parametrize(("hours", "days"), [(1, 1), (5, 1), (24, 1), (25, 2), (36, 2), (48, 2), (49, 3)])
def test_retention_hours_round_up_to_whole_days(hours: int, days: int) -> None:
    assert retention_days(hours) == days


def test_runs_table_has_string_keys_ttl_stream_pitr_and_sse(data_template: assertions.Template) -> None:
    data_template.has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [
                {"AttributeName": PK, "KeyType": "HASH"},
                {"AttributeName": SK, "KeyType": "RANGE"},
            ],
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_runs_table_has_the_local_stacks_history_indexes(data_template: assertions.Template) -> None:
    tables = [
        r["Properties"]
        for r in resources_of(data_template, "AWS::DynamoDB::Table").values()
        if r["Properties"]["KeySchema"][0]["AttributeName"] == PK
    ]
    assert len(tables) == 1
    local = create_table_kwargs("runs")["GlobalSecondaryIndexes"]
    assert sorted(tables[0]["AttributeDefinitions"], key=lambda a: a["AttributeName"]) == sorted(
        ({"AttributeName": n, "AttributeType": t} for n, t in KEY_ATTRIBUTES.items()),
        key=lambda a: a["AttributeName"],
    )

    assert sorted(tables[0]["GlobalSecondaryIndexes"], key=lambda i: i["IndexName"]) == sorted(
        local, key=lambda i: i["IndexName"]
    )
    assert all(i["Projection"]["ProjectionType"] == "INCLUDE" for i in local)
    assert all("plan" not in i["Projection"]["NonKeyAttributes"] for i in local)


def test_runs_table_is_retained_on_stack_deletion(data_template: assertions.Template) -> None:
    data_template.has_resource(
        "AWS::DynamoDB::Table", {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    )


def _artifacts_bucket(data_template: assertions.Template) -> dict:
    buckets = [
        r
        for r in resources_of(data_template, "AWS::S3::Bucket").values()
        if "LoggingConfiguration" in r["Properties"]
    ]
    assert len(buckets) == 1, "exactly one bucket (the artifacts bucket) logs to the access log bucket"
    return buckets[0]["Properties"]


def test_artifacts_expire_per_workflow_after_its_retention_in_whole_days(
    data_template: assertions.Template,
) -> None:
    rules = {rule["Id"]: rule for rule in _artifacts_bucket(data_template)["LifecycleConfiguration"]["Rules"]}

    assert rules["retention-nightly-report"] == {
        "Id": "retention-nightly-report",
        "Prefix": "runs/nightly-report/",
        "ExpirationInDays": 2,  # 36 h
        "Status": "Enabled",
    }
    assert rules["retention-quick-check"] == {
        "Id": "retention-quick-check",
        "Prefix": "runs/quick-check/",
        "ExpirationInDays": 1,  # 5 h
        "Status": "Enabled",
    }
    assert rules["abort-incomplete-multipart-uploads"]["AbortIncompleteMultipartUpload"] == {
        "DaysAfterInitiation": 1
    }
    assert "Prefix" not in rules["abort-incomplete-multipart-uploads"]


def test_artifacts_bucket_is_private_encrypted_and_logged(data_template: assertions.Template) -> None:
    bucket = _artifacts_bucket(data_template)

    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True,
        "BlockPublicPolicy": True,
        "IgnorePublicAcls": True,
        "RestrictPublicBuckets": True,
    }
    assert bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"] == [
        {"ServerSideEncryptionByDefault": {"SSEAlgorithm": "AES256"}}
    ]
    assert bucket["LoggingConfiguration"]["LogFilePrefix"] == "artifacts/"
    assert "DestinationBucketName" in bucket["LoggingConfiguration"]


def test_every_bucket_refuses_plain_http(data_template: assertions.Template) -> None:
    bucket_ids = set(resources_of(data_template, "AWS::S3::Bucket"))
    denied = set()
    for policy in resources_of(data_template, "AWS::S3::BucketPolicy").values():
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
            if statement["Effect"] == "Deny" and statement.get("Condition") == {
                "Bool": {"aws:SecureTransport": "false"}
            }:
                denied.add(policy["Properties"]["Bucket"]["Ref"])

    assert denied == bucket_ids


def test_history_indexes_context_builds_only_the_first_indexes() -> None:
    # CloudFormation adds one index per update to an existing table: the context stages them.
    app = cdk.App(context={HISTORY_INDEXES_CONTEXT: 2})
    stack = cdk.Stack(app, "Staged")
    RunStore(stack, "Runs")

    table = next(iter(resources_of(assertions.Template.from_stack(stack), "AWS::DynamoDB::Table").values()))

    assert [i["IndexName"] for i in table["Properties"]["GlobalSecondaryIndexes"]] == list(GLOBAL_INDEXES)[:2]
