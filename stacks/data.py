"""Data stack: the runs table (RunStore) and the artifacts bucket (ArtifactStore)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import aws_cdk as cdk
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_s3 as s3
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import ARTIFACT_KEY_PREFIX, PK, SK
from flowdeck.definition import WorkflowDefinition
from flowdeck.stores.schema import (
    DELIVERY_KEY_ATTRIBUTES,
    GLOBAL_INDEXES,
    KEY_ATTRIBUTES,
    LOG_KEY_ATTRIBUTES,
    index_non_key_attributes,
)
from stacks.defaults import encrypted_table

ACCESS_LOGS_RETENTION_DAYS = 90
HISTORY_INDEXES_CONTEXT = "history_indexes"
ABORT_INCOMPLETE_UPLOADS_DAYS = 1


def retention_days(retention_hours: int) -> int:
    """S3 lifecycle counts whole days: round the workflow's retention up, never below one day."""
    return max(1, math.ceil(retention_hours / 24))


def artifacts_prefix(workflow: str) -> str:
    """Key prefix holding every artifact of one workflow's runs."""
    return f"{ARTIFACT_KEY_PREFIX}{workflow}/"


class RunStore(Construct):
    """The runs table: one item per run and per step output, expired by TTL, streamed for fan-out."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = self._build_table()
        self._build_history_indexes()

    def _build_table(self) -> dynamodb.Table:
        return encrypted_table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=PK, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=SK, type=dynamodb.AttributeType.STRING),
            # The fan-out handler (WebSocket push) needs both images to tell what changed.
            stream=dynamodb.StreamViewType.NEW_AND_OLD_IMAGES,
        )

    def _build_history_indexes(self) -> None:
        """The run history's sparse indexes, as the local stack creates them (flowdeck.stores.schema).

        CloudFormation adds at most one index to an existing table per update: `-c history_indexes=N`
        builds only the first N, so an older table is brought up to date one deploy at a time.
        """
        wanted = self.node.try_get_context(HISTORY_INDEXES_CONTEXT)
        names = list(GLOBAL_INDEXES)[: int(wanted)] if wanted is not None else list(GLOBAL_INDEXES)
        for name in names:
            partition, sort = GLOBAL_INDEXES[name]
            self.table.add_global_secondary_index(
                index_name=name,
                partition_key=_key_attribute(partition),
                sort_key=_key_attribute(sort),
                # Only the history row's columns: an index entry is rewritten when one of them changes.
                projection_type=dynamodb.ProjectionType.INCLUDE,
                non_key_attributes=index_non_key_attributes(name),
            )


def suppress_runs_index_grants(app: Construct) -> None:
    """Accept the `<runs table>/index/*` resource every grant on the runs table carries (cdk-nag IAM5)."""
    NagSuppressions.add_resource_suppressions(
        app,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="A grant on the runs table includes its indexes (<table>/index/*): CDK grants a table "
                "with indexes no other way, and the run history reads one index per access pattern "
                "(docs/history.md). Only the runs table's own indexes match.",
                applies_to=[{"regex": "/^Resource::.*RunStoreTable[0-9A-F]+.*/index/\\*$/g"}],
            )
        ],
        apply_to_children=True,
    )


def _key_attribute(name: str) -> dynamodb.Attribute:
    kind = dynamodb.AttributeType.NUMBER if KEY_ATTRIBUTES[name] == "N" else dynamodb.AttributeType.STRING
    return dynamodb.Attribute(name=name, type=kind)


class LogStore(Construct):
    """The logs table: one item per batch of step output (run_id, seq), TTL-expired, streamed (live view)."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.table = self._build_table()

    def _build_table(self) -> dynamodb.Table:
        (pk, _), (sk, _) = LOG_KEY_ATTRIBUTES.items()
        # Each batch carries expires_at = its write time + the workflow's retention (the TTL).
        return encrypted_table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=pk, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=sk, type=dynamodb.AttributeType.NUMBER),
            # Batches are written once and never changed: the live view's fan-out needs new images only.
            stream=dynamodb.StreamViewType.NEW_IMAGE,
        )


class DeliveryStore(Construct):
    """The trigger history: one item per delivery (workflow, `<received_at>#<id>`), expired by TTL."""

    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        (pk, _), (sk, _) = DELIVERY_KEY_ATTRIBUTES.items()
        self.table = encrypted_table(
            self,
            "Table",
            partition_key=dynamodb.Attribute(name=pk, type=dynamodb.AttributeType.STRING),
            sort_key=dynamodb.Attribute(name=sk, type=dynamodb.AttributeType.STRING),
        )


class ArtifactStore(Construct):
    """The artifacts bucket: private, encrypted, TLS-only; each workflow's runs expire after its retention."""

    def __init__(self, scope: Construct, construct_id: str, *, retention: Mapping[str, int]) -> None:
        """`retention` maps a workflow name to its retention in hours (runtime_config.retention_hours)."""
        super().__init__(scope, construct_id)
        self.access_logs_bucket = self._build_access_logs_bucket()
        self.bucket = self._build_bucket(retention)

    def _build_access_logs_bucket(self) -> s3.Bucket:
        bucket = s3.Bucket(
            self,
            "AccessLogs",
            # Server access log delivery does not support SSE-KMS targets.
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="expire-access-logs", expiration=cdk.Duration.days(ACCESS_LOGS_RETENTION_DAYS)
                )
            ],
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )
        NagSuppressions.add_resource_suppressions(
            bucket,
            [
                NagPackSuppression(
                    id="AwsSolutions-S1",
                    reason="This is the server access log target of the artifacts bucket; logging it "
                    "to itself would log every log delivery.",
                )
            ],
            apply_to_children=True,
        )
        return bucket

    def _build_bucket(self, retention: Mapping[str, int]) -> s3.Bucket:
        rules = [
            s3.LifecycleRule(
                id=f"retention-{workflow}",
                prefix=artifacts_prefix(workflow),
                expiration=cdk.Duration.days(retention_days(hours)),
            )
            for workflow, hours in sorted(retention.items())
        ]
        rules.append(
            s3.LifecycleRule(
                id="abort-incomplete-multipart-uploads",
                abort_incomplete_multipart_upload_after=cdk.Duration.days(ABORT_INCOMPLETE_UPLOADS_DAYS),
            )
        )
        return s3.Bucket(
            self,
            "Bucket",
            encryption=s3.BucketEncryption.S3_MANAGED,
            block_public_access=s3.BlockPublicAccess.BLOCK_ALL,
            enforce_ssl=True,
            object_ownership=s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
            # Unversioned on purpose: artifacts are written once per run and retention is the point;
            # with versioning an expiration would only hide objects behind delete markers.
            versioned=False,
            server_access_logs_bucket=self.access_logs_bucket,
            server_access_logs_prefix="artifacts/",
            lifecycle_rules=rules,
            removal_policy=cdk.RemovalPolicy.RETAIN,
        )

    def grant_artifacts_read_write(self, grantee: iam.IGrantable) -> None:
        """List, read and upload run artifacts, multipart uploads included."""
        self._grant(grantee, ["s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"])

    def _grant(self, grantee: iam.IGrantable, object_actions: list[str]) -> None:
        # Hand-written rather than bucket.grant_read_write: that grant adds s3:DeleteObject*,
        # PutObjectRetention/LegalHold and List* wildcards that no Flowdeck component needs.
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=object_actions,
                resources=[self.bucket.arn_for_objects(f"{ARTIFACT_KEY_PREFIX}*")],
            )
        )
        grantee.grant_principal.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["s3:ListBucket"],
                resources=[self.bucket.bucket_arn],
                conditions={"StringLike": {"s3:prefix": [f"{ARTIFACT_KEY_PREFIX}*"]}},
            )
        )


class DataStack(cdk.Stack):
    """Stateful resources shared by every other stack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definitions: Mapping[str, WorkflowDefinition],
    ) -> None:
        super().__init__(scope, construct_id, description="Flowdeck data: runs table and artifacts bucket")
        self.run_store = RunStore(self, "RunStore")
        self.log_store = LogStore(self, "LogStore")
        self.logs_table = self.log_store.table
        self.delivery_store = DeliveryStore(self, "DeliveryStore")
        self.deliveries_table = self.delivery_store.table
        self.artifacts = ArtifactStore(
            self,
            "ArtifactStore",
            retention={name: d.runtime_config.retention_hours for name, d in definitions.items()},
        )
