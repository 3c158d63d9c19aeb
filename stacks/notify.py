"""Notify stack: approval requests (issue 4) - the approvals queue, its notifier Lambda, SES and secrets.

The stack deploys after the API (its links point at the REST API's URL). Nothing before it holds a
reference to it: the state machines send to the approvals queue by its fixed name
(stacks.workflows.approvals_queue_by_name) and the API reads the two secrets by their fixed names
(flowdeck.constants), the way the API and the triggers name state machines.
"""

from __future__ import annotations

from typing import Final

from aws_cdk import Aws, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_ses as ses
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    APPROVAL_LINK_SECRET,
    APPROVALS_DLQ,
    APPROVALS_QUEUE,
    ENV_APPROVAL_LINK_SECRET_NAME,
    ENV_DASHBOARD_URL,
    ENV_PUBLIC_API_URL,
    ENV_RUNS_TABLE,
    ENV_SES_SENDER,
    ENV_SLACK_SECRET_NAME,
    ENV_WORKFLOWS_DIR,
    SLACK_SECRET,
)
from stacks.api import LAMBDA_WORKFLOWS_DIR, powertools_layer_arn
from stacks.bundling import dependencies_layer
from stacks.defaults import python_handler

NOTIFIER_HANDLER: Final = "lambdas.notifier.lambda_handler"
NOTIFIER_SERVICE: Final = "flowdeck-notifier"
# `cdk deploy -c ses_sender=...`: the From address, verified as an SES identity by this stack.
SES_SENDER_CONTEXT: Final = "ses_sender"
DEFAULT_SES_SENDER: Final = "flowdeck@example.com"
# `cdk deploy -c public_api_url=https://...`: where links point when the API has a custom domain.
PUBLIC_API_URL_CONTEXT: Final = "public_api_url"
# The dashboard's URL (the FlowdeckWeb stack's CloudFront domain, once it exists): approval links open it.
DASHBOARD_URL_CONTEXT: Final = "dashboard_url"
# `cdk deploy -c slack_channel=#deploys`: the channel of approvals that name none (Settings.slack_channel).
SLACK_CHANNEL_CONTEXT: Final = "slack_channel"
ENV_SLACK_CHANNEL: Final = "FLOWDECK_SLACK_CHANNEL"
LINK_KEY_LENGTH: Final = 64
# One request is a DynamoDB write, an e-mail and a Slack post: small batches, each message retried alone.
BATCH_SIZE: Final = 5
NOTIFIER_TIMEOUT: Final = Duration.seconds(30)
# AWS advises at least six times the function timeout for an SQS event source (retries of throttles).
VISIBILITY_TIMEOUT: Final = Duration.seconds(6 * 30)
# The notifier stops retrying a delivery itself after flowdeck.approvals.notifier.MAX_DELIVERY_ATTEMPTS
# receives (the request stays in the inbox); a message that still fails (a crash) lands in the DLQ.
MAX_RECEIVE_COUNT: Final = 5
# Answering SendTaskFailure: the token names no resource (the action has no resource-level permissions).
NOTIFIER_TASK_ACTIONS: Final = ["states:SendTaskFailure"]


def rest_api_base_url(api: apigw.RestApi) -> str:
    """The stage URL without a trailing slash (links append `/approvals/<token>`)."""
    stage = api.deployment_stage.stage_name
    return f"https://{api.rest_api_id}.execute-api.{Aws.REGION}.{Aws.URL_SUFFIX}/{stage}"


class ApprovalNotifier(Construct):
    """The approvals queue (+ DLQ) -> lambdas.notifier: records each request, e-mails and posts to Slack."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        public_api_url: str,
        ses_sender: str,
        slack_channel: str | None = None,
        dashboard_url: str | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dead_letters = sqs.Queue(
            self,
            "DeadLetters",
            queue_name=APPROVALS_DLQ,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            # Fixed: the state machines build its URL and ARN from it (workflows.approvals_queue_by_name).
            queue_name=APPROVALS_QUEUE,
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=VISIBILITY_TIMEOUT,
            retention_period=Duration.days(4),
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dead_letters, max_receive_count=MAX_RECEIVE_COUNT
            ),
        )
        self.sender = ses.EmailIdentity(self, "Sender", identity=ses.Identity.email(ses_sender))
        self.link_key = secretsmanager.Secret(
            self,
            "LinkKey",
            secret_name=APPROVAL_LINK_SECRET,
            description="Flowdeck approvals: HMAC-SHA256 key that signs the approve/reject e-mail links",
            generate_secret_string=secretsmanager.SecretStringGenerator(
                password_length=LINK_KEY_LENGTH, exclude_punctuation=True
            ),
        )
        self.slack_secret = secretsmanager.Secret(
            self,
            "Slack",
            secret_name=SLACK_SECRET,
            description='Flowdeck approvals: Slack app {"bot_token", "signing_secret"} (put by the operator)',
            # A random signing secret until the operator puts Slack's: an empty one would let anyone
            # sign interactions, a random one refuses them all (401).
            generate_secret_string=secretsmanager.SecretStringGenerator(
                secret_string_template='{"bot_token": ""}',  # noqa: S106 - an empty placeholder
                generate_string_key="signing_secret",
                exclude_punctuation=True,
            ),
        )
        built = python_handler(
            self,
            "Handler",
            handler=NOTIFIER_HANDLER,
            description="Flowdeck approvals notifier (SES e-mail, Slack message)",
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", powertools_layer_arn()),
                dependencies_layer(self, "Dependencies"),
            ],
            timeout=NOTIFIER_TIMEOUT,
            environment={
                ENV_RUNS_TABLE: table.table_name,
                ENV_SES_SENDER: ses_sender,
                ENV_PUBLIC_API_URL: public_api_url,
                ENV_SLACK_SECRET_NAME: SLACK_SECRET,
                ENV_APPROVAL_LINK_SECRET_NAME: APPROVAL_LINK_SECRET,
                # teams.yaml (groups, Slack ids) ships in the zip's workflows/ folder.
                ENV_WORKFLOWS_DIR: LAMBDA_WORKFLOWS_DIR,
                "POWERTOOLS_SERVICE_NAME": NOTIFIER_SERVICE,
            },
        )
        self.function, self.role = built.function, built.role
        if slack_channel:
            self.function.add_environment(ENV_SLACK_CHANNEL, slack_channel)
        if dashboard_url:
            self.function.add_environment(ENV_DASHBOARD_URL, dashboard_url.rstrip("/"))
        self.function.add_event_source(
            sources.SqsEventSource(self.queue, batch_size=BATCH_SIZE, report_batch_item_failures=True)
        )
        self._grant(table)
        self._suppress_findings()

    def _grant(self, table: dynamodb.ITable) -> None:
        # Records the request on the step item (conditional writes) and reads the run for the message.
        table.grant_read_write_data(self.role)
        self.sender.grant_send_email(self.role)
        self.link_key.grant_read(self.role)
        self.slack_secret.grant_read(self.role)
        # A request that cannot be delivered to anyone fails the waiting step instead of hanging it.
        self.role.add_to_policy(iam.PolicyStatement(actions=NOTIFIER_TASK_ACTIONS, resources=["*"]))

    def _suppress_findings(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="states:SendTaskFailure (answering a task token) and X-Ray PutTraceSegments/"
                    "PutTelemetryRecords (active tracing) do not support resource-level permissions.",
                    applies_to=["Resource::*"],
                ),
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.dead_letters,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="The approvals queue's dead-letter queue (requests the notifier failed "
                    f"{MAX_RECEIVE_COUNT} times).",
                )
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.link_key,
            [
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="Rotating the link key invalidates every outstanding approve/reject link (they "
                    "are HMACs under it); rotate by hand with put-secret-value when no approval waits "
                    "(README, Deploy to AWS).",
                )
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.slack_secret,
            [
                NagPackSuppression(
                    id="AwsSolutions-SMG4",
                    reason="The bot token and signing secret are issued by Slack, not by AWS: a rotation "
                    "Lambda cannot mint new ones; the operator replaces them with put-secret-value.",
                )
            ],
        )


class NotifyStack(Stack):
    """Approval requests: the approvals queue, the notifier, the SES sender identity and the secrets."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        api: apigw.RestApi,
    ) -> None:
        super().__init__(
            scope, construct_id, description="Flowdeck notify: approvals queue, notifier, SES and secrets"
        )
        context_url = self.node.try_get_context(PUBLIC_API_URL_CONTEXT)
        self.notifier = ApprovalNotifier(
            self,
            "ApprovalNotifier",
            table=table,
            public_api_url=str(context_url).rstrip("/") if context_url else rest_api_base_url(api),
            ses_sender=str(self.node.try_get_context(SES_SENDER_CONTEXT) or DEFAULT_SES_SENDER),
            slack_channel=self.node.try_get_context(SLACK_CHANNEL_CONTEXT),
            dashboard_url=self.node.try_get_context(DASHBOARD_URL_CONTEXT),
        )
