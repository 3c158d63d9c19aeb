"""DataStack: the runs table and the artifacts bucket."""

from __future__ import annotations

import pytest
from aws_cdk import assertions
from aws_cdk.assertions import Match
from stack_helpers import resources_of

from flowdeck.constants import PK, SK, TTL_ATTRIBUTE
from stacks.data import retention_days


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
            "AttributeDefinitions": Match.array_equals(
                [{"AttributeName": PK, "AttributeType": "S"}, {"AttributeName": SK, "AttributeType": "S"}]
            ),
            "BillingMode": "PAY_PER_REQUEST",
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "StreamSpecification": {"StreamViewType": "NEW_AND_OLD_IMAGES"},
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


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
