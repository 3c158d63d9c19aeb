"""API stack: the REST API (IAM/SigV4 on every method) and its Lambda handler (RunsApi)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import ArnFormat, Aws, Duration, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_logs as logs
from aws_cdk import aws_secretsmanager as secretsmanager
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    APPROVAL_LINK_SECRET,
    ENV_APPROVAL_LINK_SECRET_NAME,
    ENV_ARTIFACTS_BUCKET,
    ENV_DELIVERIES_TABLE,
    ENV_LOGS_TABLE,
    ENV_MANAGE_TRIGGERS,
    ENV_RUNS_TABLE,
    ENV_SCHEDULE_GROUP,
    ENV_SLACK_SECRET_NAME,
    ENV_STATE_MACHINE_ARN_PREFIX,
    ENV_STEPS_QUEUE_URL,
    ENV_WORKFLOWS_DIR,
    SLACK_SECRET,
    STATE_MACHINE_PREFIX,
)
from flowdeck.triggers.switch import SCHEDULE_GROUP
from stacks.bundling import dependencies_layer
from stacks.data import ArtifactStore
from stacks.defaults import LOG_RETENTION, Handler, python_handler
from stacks.triggers import SCHEDULES_ROLE_NAME
from stacks.workflows import state_machine_name

# Public Powertools for AWS Lambda (Python) v3 layer; bump together with pyproject's pin.
POWERTOOLS_LAYER_ACCOUNT = "017000801446"
POWERTOOLS_LAYER_VERSION = 27
API_HANDLER = "lambdas.api.lambda_handler"
API_SERVICE_NAME = "flowdeck-api"
API_STAGE = "v1"
# Relative to the Lambda task root: the zip ships the repository's workflows/ folder.
LAMBDA_WORKFLOWS_DIR = "workflows"
THROTTLE_RATE_LIMIT = 50
THROTTLE_BURST_LIMIT = 100
# The decision endpoints (approve/reject, step retry/skip) and cancel answer waiting task tokens.
TASK_TOKEN_ACTIONS = ["states:SendTaskSuccess", "states:SendTaskFailure"]
# The signed trigger endpoints (POST /hooks/github, /hooks/{wf}) take no SigV4: their own, lower limits.
HOOKS_THROTTLE_RATE_LIMIT = 10
HOOKS_THROTTLE_BURST_LIMIT = 20
HOOK_PATHS = ("/hooks/github", "/hooks/{wf}")
# Webhook secrets live under this Secrets Manager name prefix (flowdeck.triggers.secrets.SECRET_PREFIX).
WEBHOOK_SECRETS = "flowdeck/webhooks/*"
# Approval decisions without SigV4 (issue 4): the Slack app's interactivity URL (Slack's request
# signature) and the e-mailed links (GET shows a confirmation page, POST decides; HMAC-signed token).
APPROVAL_ROUTES = (
    ("/slack/interactions", "POST"),
    ("/approvals/{token}", "GET"),
    ("/approvals/{token}", "POST"),
)


def powertools_layer_arn() -> str:
    """The Powertools layer in the deployment's region (the layer exists in the aws partition only)."""
    return (
        f"arn:aws:lambda:{Aws.REGION}:{POWERTOOLS_LAYER_ACCOUNT}:layer:"
        f"AWSLambdaPowertoolsPythonV3-python311-x86_64:{POWERTOOLS_LAYER_VERSION}"
    )


class RunsApi(Construct):
    """REST API for people and tools (SigV4), proxied to one powertools Lambda handler."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        artifacts: ArtifactStore,
        workflow_names: Sequence[str],
        logs_table: dynamodb.ITable,
        deliveries_table: dynamodb.ITable | None = None,
        steps_queue: sqs.IQueue | None = None,
        triggers: Sequence[tuple[str, str]] = (),
    ) -> None:
        """`triggers`: (kind, name) of every schedule and rule, which pausing a workflow disables."""
        super().__init__(scope, construct_id)
        handler = self._build_handler(table, artifacts)
        self.function, self.role, self.log_group = handler.function, handler.role, handler.log_group
        self._grant(table, artifacts, workflow_names)
        # GET /runs/{id}/logs reads the logs table (Query); the workers write it.
        self.function.add_environment(ENV_LOGS_TABLE, logs_table.table_name)
        logs_table.grant_read_data(self.role)
        if deliveries_table is not None:
            self._grant_triggers(deliveries_table)
        if steps_queue is not None:
            # Cancel with cleanup sends one `{"type": "cleanup"}` message to the workers' queue.
            self.function.add_environment(ENV_STEPS_QUEUE_URL, steps_queue.queue_url)
            steps_queue.grant_send_messages(self.role)
        self._grant_approvals()
        self._grant_trigger_switch(triggers)
        self.access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION)
        self.api = self._build_api()
        self._suppress_findings()

    def _build_handler(self, table: dynamodb.ITable, artifacts: ArtifactStore) -> Handler:
        stack = Stack.of(self)
        return python_handler(
            self,
            "Handler",
            handler=API_HANDLER,
            description="Flowdeck REST API handler",
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", powertools_layer_arn()),
                dependencies_layer(self, "Dependencies"),
            ],
            # API Gateway gives up after 29 s; a longer handler would only burn money.
            timeout=Duration.seconds(29),
            environment={
                ENV_RUNS_TABLE: table.table_name,
                ENV_STATE_MACHINE_ARN_PREFIX: stack.format_arn(
                    service="states",
                    resource="stateMachine",
                    resource_name=STATE_MACHINE_PREFIX,
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                ),
                ENV_WORKFLOWS_DIR: LAMBDA_WORKFLOWS_DIR,
                ENV_ARTIFACTS_BUCKET: artifacts.bucket.bucket_name,
                "POWERTOOLS_SERVICE_NAME": API_SERVICE_NAME,
            },
        )

    def _grant(self, table: dynamodb.ITable, artifacts: ArtifactStore, workflow_names: Sequence[str]) -> None:
        table.grant_read_write_data(self.role)
        # Artifact endpoints sign GET URLs and build ZIPs of a run's artifacts in the bucket (multipart
        # put under runs/<wf>/<run>/.flowdeck/zips/); they never delete.
        artifacts.grant_artifacts_read_write(self.role)
        if workflow_names:
            # ARNs built from the fixed names rather than imported from the workflows stack, so
            # removing a workflow never blocks on an export that this stack still uses.
            stack = Stack.of(self)
            machines = [
                stack.format_arn(
                    service="states",
                    resource="stateMachine",
                    resource_name=state_machine_name(name),
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for name in workflow_names
            ]
            executions = [
                stack.format_arn(
                    service="states",
                    resource="execution",
                    resource_name=f"{state_machine_name(name)}:*",
                    arn_format=ArnFormat.COLON_RESOURCE_NAME,
                )
                for name in workflow_names
            ]
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["states:StartExecution"], resources=machines)
            )
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["states:DescribeExecution", "states:StopExecution"], resources=executions
                )
            )
        self.role.add_to_policy(iam.PolicyStatement(actions=TASK_TOKEN_ACTIONS, resources=["*"]))

    def _grant_trigger_switch(self, triggers: Sequence[tuple[str, str]]) -> None:
        """PUT /workflows/{wf}/state disables and enables exactly these schedules and rules."""
        self.function.add_environment(ENV_MANAGE_TRIGGERS, "true")
        self.function.add_environment(ENV_SCHEDULE_GROUP, SCHEDULE_GROUP)
        stack = Stack.of(self)
        schedules = [
            stack.format_arn(
                service="scheduler", resource="schedule", resource_name=f"{SCHEDULE_GROUP}/{name}"
            )
            for kind, name in triggers
            if kind == "schedule"
        ]
        rules = [
            stack.format_arn(service="events", resource="rule", resource_name=name)
            for kind, name in triggers
            if kind == "rule"
        ]
        if schedules:
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["scheduler:GetSchedule", "scheduler:UpdateSchedule"], resources=schedules
                )
            )
            # UpdateSchedule resends the schedule's target, with the role Scheduler assumes.
            self.role.add_to_policy(
                iam.PolicyStatement(
                    actions=["iam:PassRole"],
                    resources=[
                        stack.format_arn(
                            service="iam", region="", resource="role", resource_name=SCHEDULES_ROLE_NAME
                        )
                    ],
                    conditions={"StringEquals": {"iam:PassedToService": "scheduler.amazonaws.com"}},
                )
            )
        if rules:
            self.role.add_to_policy(
                iam.PolicyStatement(actions=["events:EnableRule", "events:DisableRule"], resources=rules)
            )

    def _grant_triggers(self, deliveries_table: dynamodb.ITable) -> None:
        """The signed hooks read webhook secrets (that prefix only) and write the trigger history."""
        self.function.add_environment(ENV_DELIVERIES_TABLE, deliveries_table.table_name)
        deliveries_table.grant_read_write_data(self.role)
        secrets = Stack.of(self).format_arn(
            service="secretsmanager",
            resource="secret",
            resource_name=WEBHOOK_SECRETS,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )
        self.role.add_to_policy(
            iam.PolicyStatement(actions=["secretsmanager:GetSecretValue"], resources=[secrets])
        )

    def _grant_approvals(self) -> None:
        """Decisions check link HMACs and Slack signatures, and update the Slack message: both secrets."""
        # Named, not referenced: the notify stack creates them and deploys after this one. No SES: the
        # API sends no e-mail (only the notifier does).
        for construct_id, name, variable in (
            ("SlackSecret", SLACK_SECRET, ENV_SLACK_SECRET_NAME),
            ("LinkKeySecret", APPROVAL_LINK_SECRET, ENV_APPROVAL_LINK_SECRET_NAME),
        ):
            self.function.add_environment(variable, name)
            secretsmanager.Secret.from_secret_name_v2(self, construct_id, name).grant_read(self.role)

    def _build_api(self) -> apigw.RestApi:
        api = apigw.RestApi(
            self,
            "Api",
            description="Flowdeck REST API (SPEC §3), IAM (SigV4) authorization on every method",
            endpoint_types=[apigw.EndpointType.REGIONAL],
            # The account-level role API Gateway needs to write execution logs (APIG6).
            cloud_watch_role=True,
            deploy_options=apigw.StageOptions(
                stage_name=API_STAGE,
                access_log_destination=apigw.LogGroupLogDestination(self.access_logs),
                access_log_format=apigw.AccessLogFormat.json_with_standard_fields(
                    caller=True,
                    http_method=True,
                    ip=True,
                    protocol=True,
                    request_time=True,
                    resource_path=True,
                    response_length=True,
                    status=True,
                    user=True,
                ),
                logging_level=apigw.MethodLoggingLevel.INFO,
                # Request and response bodies may hold step outputs: keep them out of the logs.
                data_trace_enabled=False,
                metrics_enabled=True,
                tracing_enabled=True,
                throttling_rate_limit=THROTTLE_RATE_LIMIT,
                throttling_burst_limit=THROTTLE_BURST_LIMIT,
                method_options={
                    f"{path}/POST": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=HOOKS_THROTTLE_RATE_LIMIT,
                        throttling_burst_limit=HOOKS_THROTTLE_BURST_LIMIT,
                    )
                    for path in HOOK_PATHS
                }
                | {
                    f"{path}/{http_method}": apigw.MethodDeploymentOptions(
                        throttling_rate_limit=HOOKS_THROTTLE_RATE_LIMIT,
                        throttling_burst_limit=HOOKS_THROTTLE_BURST_LIMIT,
                    )
                    for path, http_method in APPROVAL_ROUTES
                },
            ),
        )
        # Body validation applies only where a method declares a model; the handler validates bodies
        # with pydantic, so this validator is the gateway-level check nag asks for (APIG2).
        validator = api.add_request_validator(
            "RequestValidator", validate_request_body=True, validate_request_parameters=True
        )
        integration = apigw.LambdaIntegration(self.function)
        for resource in (api.root, api.root.add_resource("{proxy+}")):
            resource.add_method(
                "ANY",
                integration,
                authorization_type=apigw.AuthorizationType.IAM,
                request_validator=validator,
            )
        self._add_hooks(api, integration, validator)
        self._add_approval_routes(api, integration, validator)
        return api

    def _add_hooks(
        self, api: apigw.RestApi, integration: apigw.Integration, validator: apigw.RequestValidator
    ) -> None:
        """POST /hooks/github and /hooks/{wf} without SigV4 (GitHub cannot sign): the HMAC is their auth."""
        hooks = api.root.add_resource("hooks")
        for resource in (hooks.add_resource("github"), hooks.add_resource("{wf}")):
            method = resource.add_method(
                "POST",
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                request_validator=validator,
            )
            NagSuppressions.add_resource_suppressions(
                method,
                [
                    NagPackSuppression(
                        id="AwsSolutions-APIG4",
                        reason="Signed trigger endpoint: GitHub and webhook senders cannot sign with SigV4. "
                        "The handler verifies an HMAC-SHA256 of the body (secret in Secrets Manager, "
                        "constant-time compare) and answers 401 before anything runs; POST only, "
                        "throttled per method below the stage limit.",
                    ),
                ],
            )

    def _add_approval_routes(
        self, api: apigw.RestApi, integration: apigw.Integration, validator: apigw.RequestValidator
    ) -> None:
        """POST /slack/interactions, GET/POST /approvals/{token}: no SigV4, the signature is their auth."""
        for path, http_method in APPROVAL_ROUTES:
            method = api.root.resource_for_path(path).add_method(
                http_method,
                integration,
                authorization_type=apigw.AuthorizationType.NONE,
                request_validator=validator,
                request_parameters={"method.request.path.token": True} if "{token}" in path else None,
            )
            NagSuppressions.add_resource_suppressions(
                method,
                [
                    NagPackSuppression(
                        id="AwsSolutions-APIG4",
                        reason="Signed approval endpoint: Slack and e-mail clients cannot sign with SigV4. "
                        "/slack/interactions verifies Slack's signature and timestamp (slack-sdk, secret "
                        "flowdeck/slack) and /approvals/{token} an HMAC-SHA256 token (secret "
                        "flowdeck/approvals/link-key, constant-time compare, expiry, single use), answering "
                        "401 before anything changes; throttled per method below the stage limit.",
                    ),
                    NagPackSuppression(
                        id="AwsSolutions-COG4",
                        reason="Slack and approvers following an e-mailed link have no Cognito or IAM "
                        "identity; the request's signature names the approver.",
                    ),
                ],
            )

    def _suppress_findings(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="states:SendTaskSuccess/SendTaskFailure (decision and cancel endpoints) and "
                    "X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) do not support "
                    "resource-level permissions.",
                    applies_to=["Resource::*"],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Execution names are generated per run: DescribeExecution/StopExecution are "
                    "scoped to the executions of Flowdeck's own state machines (flowdeck-<workflow>:*).",
                    applies_to=[
                        {
                            "regex": "/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
                            f"<AWS::AccountId>:execution:{STATE_MACHINE_PREFIX}[a-z0-9-]+:\\*$/g"
                        }
                    ],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Object-level S3 actions must name objects; get/put (ZIPs built from a run's "
                    "artifacts), no delete, scoped to the runs/ prefix of the artifacts bucket.",
                    applies_to=[{"regex": "/^Resource::.*/runs/\\*$/g"}],
                ),
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Signed trigger endpoints read webhook secrets by name; GetSecretValue only, "
                    "scoped to the flowdeck/webhooks/ name prefix (Secrets Manager appends a suffix).",
                    applies_to=[
                        "Resource::arn:<AWS::Partition>:secretsmanager:<AWS::Region>:<AWS::AccountId>:"
                        f"secret:{WEBHOOK_SECRETS}"
                    ],
                ),
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.api,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM4",
                    reason="API Gateway's account-level CloudWatch role: the AWS-managed "
                    "AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents for it "
                    "and keeps current.",
                    applies_to=[
                        "Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/"
                        "AmazonAPIGatewayPushToCloudWatchLogs"
                    ],
                ),
                NagPackSuppression(
                    id="AwsSolutions-APIG3",
                    reason="Every method requires SigV4 (AWS_IAM), so anonymous traffic is refused before "
                    "the integration, except the signed endpoints (hooks, Slack interactions, approval "
                    "links: signature checked first, throttled per method); stage throttling caps abuse. "
                    "A WAF web ACL is left to the operator.",
                ),
                NagPackSuppression(
                    id="AwsSolutions-COG4",
                    reason="SPEC §3: people and tools authenticate with IAM (SigV4) on every method, not "
                    "with Cognito user pools.",
                ),
            ],
            apply_to_children=True,
        )


class ApiStack(Stack):
    """The REST API and its handler."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        artifacts: ArtifactStore,
        workflow_names: Sequence[str],
        logs_table: dynamodb.ITable,
        deliveries_table: dynamodb.ITable | None = None,
        steps_queue: sqs.IQueue | None = None,
        triggers: Sequence[tuple[str, str]] = (),
    ) -> None:
        super().__init__(scope, construct_id, description="Flowdeck API: REST API with IAM authorization")
        self.runs_api = RunsApi(
            self,
            "RunsApi",
            table=table,
            artifacts=artifacts,
            workflow_names=workflow_names,
            logs_table=logs_table,
            deliveries_table=deliveries_table,
            steps_queue=steps_queue,
            triggers=triggers,
        )
