"""The run-events Lambda (RunEventsHandler): reactions to run records changing, from the runs stream."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Duration, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    ENV_DELIVERIES_TABLE,
    ENV_RUNS_TABLE,
    ENV_SLACK_SECRET_NAME,
    ENV_STATE_MACHINE_ARN_PREFIX,
    ENV_WORKFLOWS_DIR,
    RUN_EVENTS_RETRY_ATTEMPTS,
    RUN_SK,
    SK,
    SLACK_SECRET,
    STATE_MACHINE_PREFIX,
    STEP_SK_PREFIX,
)
from flowdeck.control.owed_answers import OWED_ANSWER
from stacks.api import LAMBDA_WORKFLOWS_DIR, powertools_layer_arn
from stacks.bundling import dependencies_layer
from stacks.defaults import python_handler

RUN_EVENTS_HANDLER = "lambdas.run_events.lambda_handler"
RUN_EVENTS_SERVICE = "flowdeck-run-events"
# Small batches: each record may start executions; a failed record is retried alone (partial batch
# responses + bisect), at most this often, then its batch goes to the DLQ.
BATCH_SIZE = 10
RETRY_ATTEMPTS = RUN_EVENTS_RETRY_ATTEMPTS
MAX_RECORD_AGE = Duration.days(1)


class RunEventsHandler(Construct):
    """The runs stream -> lambdas.run_events (frees concurrency slots, starts queued runs, ...)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        state_machines: Sequence[sfn.IStateMachine],
        deliveries_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        stack = Stack.of(self)
        built = python_handler(
            self,
            "Handler",
            handler=RUN_EVENTS_HANDLER,
            description="Flowdeck run-events handler (reactions to run records changing)",
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", powertools_layer_arn()),
                dependencies_layer(self, "Dependencies"),
            ],
            timeout=Duration.minutes(1),
            # Like the fan-out: invoked for every batch of run changes; failures land in the DLQ and logs.
            tracing=lambda_.Tracing.PASS_THROUGH,
            environment={
                ENV_RUNS_TABLE: table.table_name,
                ENV_DELIVERIES_TABLE: deliveries_table.table_name,
                ENV_STATE_MACHINE_ARN_PREFIX: stack.format_arn(
                    service="states",
                    resource="stateMachine",
                    resource_name=STATE_MACHINE_PREFIX,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                ),
                # Approvals a finished run left undecided: their Slack message is rewritten (the bot
                # token from this secret; HTTPS to slack.com: the function is not in a VPC) and the
                # inbox entries of their approvers (teams.yaml in the zip's workflows/) deleted.
                ENV_SLACK_SECRET_NAME: SLACK_SECRET,
                ENV_WORKFLOWS_DIR: LAMBDA_WORKFLOWS_DIR,
                "POWERTOOLS_SERVICE_NAME": RUN_EVENTS_SERVICE,
            },
        )
        self.function, self.role = built.function, built.role
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.function.add_event_source(
            sources.DynamoEventSource(
                table,
                starting_position=lambda_.StartingPosition.LATEST,
                batch_size=BATCH_SIZE,
                retry_attempts=RETRY_ATTEMPTS,
                max_record_age=MAX_RECORD_AGE,
                bisect_batch_on_error=True,
                report_batch_item_failures=True,
                on_failure=sources.SqsDlq(self.dead_letters),
                # Run items (sk RUN), and only the step changes a step reaction needs: a step leaving
                # `running` (the last process of a cancelled run may have ended) and a step owing a
                # task-token answer (a decision whose answer may have been lost). Other step writes
                # (starts, usage flushes) and log writes never invoke it.
                filters=[
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                            "dynamodb": {"Keys": {SK: {"S": lambda_.FilterRule.is_equal(RUN_SK)}}},
                        }
                    ),
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.is_equal("MODIFY"),
                            "dynamodb": {
                                "Keys": {SK: {"S": lambda_.FilterRule.begins_with(STEP_SK_PREFIX)}},
                                "OldImage": {"status": {"S": lambda_.FilterRule.is_equal("running")}},
                                "NewImage": {"status": {"S": lambda_.FilterRule.not_equals("running")}},
                            },
                        }
                    ),
                    lambda_.FilterCriteria.filter(
                        {
                            "eventName": lambda_.FilterRule.or_("INSERT", "MODIFY"),
                            "dynamodb": {
                                "Keys": {SK: {"S": lambda_.FilterRule.begins_with(STEP_SK_PREFIX)}},
                                "NewImage": {OWED_ANSWER: {"S": lambda_.FilterRule.exists()}},
                            },
                        }
                    ),
                ],
            )
        )
        # Reactions update run items (duration), step items an ended run never reached (skipped) and the
        # concurrency slots item, and read the queue.
        table.grant_read_write_data(self.function)
        # Trigger history rows for runs Scheduler and EventBridge started: a conditional PutItem only.
        deliveries_table.grant_write_data(self.function)
        for machine in state_machines:
            machine.grant_start_execution(self.function)
            # Freeing the slot of a run whose execution ended unrecorded (aborted from the console).
            machine.grant_execution(self.function, "states:DescribeExecution")
            # Answers a recorded decision still owes its waiting step (the API died before sending it).
            machine.grant_task_response(self.function)
        # By name, not by reference: the notify stack creates the secret and deploys after this one.
        secretsmanager.Secret.from_secret_name_v2(self, "SlackSecret", SLACK_SECRET).grant_read(self.role)
        self._suppress_findings()

    def _suppress_findings(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="dynamodb:ListStreams (added by the stream event source) and X-Ray "
                    "PutTraceSegments/PutTelemetryRecords (added for PassThrough tracing) do not support "
                    "resource-level permissions.",
                    applies_to=["Resource::*"],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Execution names are run ids: DescribeExecution is scoped to the executions of "
                    "this app's state machines (<machine>:*).",
                    applies_to=[{"regex": "/^Resource::arn:<AWS::Partition>:states:.*:execution:.*:\\*$/g"}],
                ),
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.dead_letters,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="The run-events handler's dead-letter queue (failed stream batches).",
                )
            ],
        )
