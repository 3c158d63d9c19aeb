"""Secure defaults shared by the stacks' constructs."""

from __future__ import annotations

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from constructs import Construct

from flowdeck.constants import TTL_ATTRIBUTE


def encrypted_table(
    scope: Construct,
    construct_id: str,
    *,
    partition_key: dynamodb.Attribute,
    sort_key: dynamodb.Attribute | None = None,
    stream: dynamodb.StreamViewType | None = None,
    removal_policy: cdk.RemovalPolicy = cdk.RemovalPolicy.RETAIN,
) -> dynamodb.Table:
    """An on-demand table with point-in-time recovery, encryption at rest and TTL on `expires_at`."""
    return dynamodb.Table(
        scope,
        construct_id,
        partition_key=partition_key,
        sort_key=sort_key,
        billing_mode=dynamodb.BillingMode.PAY_PER_REQUEST,
        point_in_time_recovery_specification=dynamodb.PointInTimeRecoverySpecification(
            point_in_time_recovery_enabled=True
        ),
        encryption=dynamodb.TableEncryption.AWS_MANAGED,
        time_to_live_attribute=TTL_ATTRIBUTE,
        stream=stream,
        removal_policy=removal_policy,
    )
