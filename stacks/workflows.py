"""Workflows stack: one Step Functions state machine per workflow definition (WorkflowStateMachine)."""

from __future__ import annotations

import json
from collections.abc import Mapping

from aws_cdk import Aws, RemovalPolicy, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    APPROVALS_QUEUE,
    ASL_APPROVALS_QUEUE_URL,
    ASL_RUNS_TABLE,
    ASL_STEPS_QUEUE_URL,
    STATE_MACHINE_PREFIX,
)
from flowdeck.definition import WorkflowDefinition
from stacks.data import retention_days
from stacks.fresh import FreshSteps
from statemachines import compile_workflow
from statemachines.fresh_step import shape_of

# CloudWatch Logs accepts only these retention periods (days); the first one that covers a
# workflow's retention is used, so execution logs live about as long as its artifacts.
_LOG_RETENTIONS: tuple[tuple[int, logs.RetentionDays], ...] = (
    (1, logs.RetentionDays.ONE_DAY),
    (3, logs.RetentionDays.THREE_DAYS),
    (5, logs.RetentionDays.FIVE_DAYS),
    (7, logs.RetentionDays.ONE_WEEK),
    (14, logs.RetentionDays.TWO_WEEKS),
    (30, logs.RetentionDays.ONE_MONTH),
    (60, logs.RetentionDays.TWO_MONTHS),
    (90, logs.RetentionDays.THREE_MONTHS),
    (120, logs.RetentionDays.FOUR_MONTHS),
    (150, logs.RetentionDays.FIVE_MONTHS),
    (180, logs.RetentionDays.SIX_MONTHS),
    (365, logs.RetentionDays.ONE_YEAR),
    (400, logs.RetentionDays.THIRTEEN_MONTHS),
    (545, logs.RetentionDays.EIGHTEEN_MONTHS),
    (731, logs.RetentionDays.TWO_YEARS),
    (1096, logs.RetentionDays.THREE_YEARS),
    (1827, logs.RetentionDays.FIVE_YEARS),
    (2192, logs.RetentionDays.SIX_YEARS),
    (2557, logs.RetentionDays.SEVEN_YEARS),
    (2922, logs.RetentionDays.EIGHT_YEARS),
    (3288, logs.RetentionDays.NINE_YEARS),
    (3653, logs.RetentionDays.TEN_YEARS),
)


def log_retention(days: int) -> logs.RetentionDays:
    """The shortest CloudWatch Logs retention that keeps logs at least `days` days."""
    for limit, retention in _LOG_RETENTIONS:
        if days <= limit:
            return retention
    return logs.RetentionDays.INFINITE


def state_machine_name(workflow: str) -> str:
    """The fixed state machine name of a workflow: the API builds ARNs from it."""
    return f"{STATE_MACHINE_PREFIX}{workflow}"


def approvals_queue_by_name(scope: Construct, construct_id: str) -> sqs.IQueue:
    """The approvals queue (notify stack) by its fixed name: no export ties the state machines to it."""
    return sqs.Queue.from_queue_attributes(
        scope,
        construct_id,
        queue_arn=Stack.of(scope).format_arn(service="sqs", resource=APPROVALS_QUEUE),
        queue_url=f"https://sqs.{Aws.REGION}.{Aws.URL_SUFFIX}/{Aws.ACCOUNT_ID}/{APPROVALS_QUEUE}",
        queue_name=APPROVALS_QUEUE,
    )


class WorkflowStateMachine(Construct):
    """A workflow's compiled ASL as a Standard state machine, with its log group and grants."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: WorkflowDefinition,
        table: dynamodb.ITable,
        queue: sqs.IQueue,
        approvals_queue: sqs.IQueue | None = None,
        fresh: FreshSteps | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.definition = definition
        # Only workflows with fresh steps start tasks: substituted and granted for those.
        self.fresh = fresh if fresh is not None and definition.fresh_steps() else None
        self.asl = json.dumps(compile_workflow(definition))
        # Only workflows with an approval step send to the approvals queue: bound and granted to those.
        self.approvals_queue = approvals_queue if f"${{{ASL_APPROVALS_QUEUE_URL}}}" in self.asl else None
        self.log_group = self._build_log_group()
        self.state_machine = self._build_state_machine(table, queue)
        self._grant(table, queue)
        self._suppress_findings()

    def _build_log_group(self) -> logs.LogGroup:
        return logs.LogGroup(
            self,
            "Logs",
            # The /aws/vendedlogs/ prefix keeps Step Functions from growing the account-wide
            # CloudWatch Logs resource policy, which has a 5,120-character limit.
            log_group_name=f"/aws/vendedlogs/states/{state_machine_name(self.definition.name)}",
            retention=log_retention(retention_days(self.definition.runtime_config.retention_hours)),
            # Named log group: keeping it after a stack deletion would block the next deploy.
            removal_policy=RemovalPolicy.DESTROY,
        )

    def _build_state_machine(self, table: dynamodb.ITable, queue: sqs.IQueue) -> sfn.StateMachine:
        return sfn.StateMachine(
            self,
            "StateMachine",
            state_machine_name=state_machine_name(self.definition.name),
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_string(self.asl),
            definition_substitutions={
                ASL_RUNS_TABLE: table.table_name,
                ASL_STEPS_QUEUE_URL: queue.queue_url,
                **({ASL_APPROVALS_QUEUE_URL: self.approvals_queue.queue_url} if self.approvals_queue else {}),
                **(self.fresh.substitutions() if self.fresh else {}),
            },
            logs=sfn.LogOptions(
                destination=self.log_group, level=sfn.LogLevel.ALL, include_execution_data=False
            ),
            tracing_enabled=True,
        )

    def _grant(self, table: dynamodb.ITable, queue: sqs.IQueue) -> None:
        # The ASL only ever calls dynamodb:updateItem on the runs table (run and step records).
        table.grant(self.state_machine, "dynamodb:UpdateItem")
        queue.grant_send_messages(self.state_machine)
        if self.approvals_queue is not None:
            self.approvals_queue.grant_send_messages(self.state_machine)
        if self.fresh is not None:
            shapes = {shape_of(step).key: shape_of(step) for step in self.definition.fresh_steps()}
            self.fresh.grant_run(self.state_machine.role, list(shapes.values()))

    def _suppress_findings(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.state_machine.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Added by CDK for logging and tracing: the CloudWatch Logs delivery actions "
                    "(logs:CreateLogDelivery, GetLogDelivery, UpdateLogDelivery, DeleteLogDelivery, "
                    "ListLogDeliveries, PutResourcePolicy, DescribeResourcePolicies, DescribeLogGroups) "
                    "and X-Ray PutTraceSegments/PutTelemetryRecords/GetSamplingRules/GetSamplingTargets "
                    "do not support resource-level permissions.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )


class WorkflowsStack(Stack):
    """One state machine per workflow definition, wired to the runs table and the steps queue."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definitions: Mapping[str, WorkflowDefinition],
        table: dynamodb.ITable,
        queue: sqs.IQueue,
        fresh: FreshSteps | None = None,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Flowdeck workflows: one state machine per workflow"
        )
        approvals_queue = approvals_queue_by_name(self, "ApprovalsQueue")
        self.workflows = {
            name: WorkflowStateMachine(
                self,
                f"Workflow-{name}",
                definition=definition,
                table=table,
                queue=queue,
                approvals_queue=approvals_queue,
                fresh=fresh,
            )
            for name, definition in sorted(definitions.items())
        }
