"""Secure defaults shared by the stacks' constructs."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import TTL_ATTRIBUTE
from stacks.assets import LAMBDA_CODE_EXCLUDE, REPO_ROOT

LOG_RETENTION: Final = logs.RetentionDays.ONE_MONTH


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


@dataclass(frozen=True)
class Handler:
    """A Lambda handler with the role and log group made for it."""

    function: lambda_.Function
    role: iam.Role
    log_group: logs.LogGroup


def python_handler(
    scope: Construct,
    prefix: str,
    *,
    handler: str,
    description: str,
    layers: Sequence[lambda_.ILayerVersion],
    timeout: cdk.Duration,
    environment: Mapping[str, str],
    tracing: lambda_.Tracing = lambda_.Tracing.ACTIVE,
) -> Handler:
    """A Flowdeck handler (`<prefix>Logs`, `<prefix>Role`, `<prefix>Function`): the repo's handler code on
    the pinned Python runtime, writing to its own log group only (not AWSLambdaBasicExecutionRole's
    logs:* on every log group)."""
    log_group = logs.LogGroup(scope, f"{prefix}Logs", retention=LOG_RETENTION)
    role = iam.Role(
        scope,
        f"{prefix}Role",
        assumed_by=iam.ServicePrincipal("lambda.amazonaws.com"),
        description=description,
    )
    log_group.grant_write(role)
    function = lambda_.Function(
        scope,
        f"{prefix}Function",
        runtime=lambda_.Runtime.PYTHON_3_11,
        architecture=lambda_.Architecture.X86_64,
        handler=handler,
        code=lambda_.Code.from_asset(str(REPO_ROOT), exclude=LAMBDA_CODE_EXCLUDE),
        layers=list(layers),
        role=role,
        log_group=log_group,
        tracing=tracing,
        memory_size=512,
        timeout=timeout,
        environment=dict(environment),
    )
    NagSuppressions.add_resource_suppressions(
        function,
        [
            NagPackSuppression(
                id="AwsSolutions-L1",
                reason="Pinned to python3.11 to match the Powertools layer (python311 build) and the "
                "worker image; upgrade runtime, layer name and image together.",
            )
        ],
    )
    return Handler(function, role, log_group)
