"""Live stack: the WebSocket API (SPEC §4), its connections table and the streams fan-out (LiveLogsApi)."""

from __future__ import annotations

import json
from typing import cast

from aws_cdk import Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigatewayv2 as apigwv2
from aws_cdk import aws_apigatewayv2_authorizers as authorizers
from aws_cdk import aws_apigatewayv2_integrations as integrations
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_lambda_event_sources as sources
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    ENV_CONNECTIONS_TABLE,
    ENV_LOGS_TABLE,
    ENV_RUNS_TABLE,
    ENV_WEBSOCKET_ENDPOINT,
    ENV_WORKFLOWS_DIR,
    FANOUT_STREAM_RETRY_ATTEMPTS,
)
from flowdeck.stores.schema import CONNECTIONS_BY_RUN_INDEX
from stacks.api import LAMBDA_WORKFLOWS_DIR, powertools_layer_arn
from stacks.bundling import dependencies_layer
from stacks.defaults import LOG_RETENTION, encrypted_table, python_handler

WS_HANDLER = "lambdas.ws.lambda_handler"
FANOUT_HANDLER = "lambdas.fanout.lambda_handler"
WS_STAGE = "live"
SUBSCRIBE_ROUTE = "subscribe"
THROTTLE_RATE_LIMIT = 50
THROTTLE_BURST_LIMIT = 100
# A stream batch is retried this often (halved on each failure) before it goes to the DLQ.
STREAM_RETRY_ATTEMPTS = FANOUT_STREAM_RETRY_ATTEMPTS
STREAM_BATCH_SIZE = 100
# WebSocket context variables (the REST API's standard fields name HTTP ones these requests lack).
ACCESS_LOG_FORMAT = {
    "requestId": "$context.requestId",
    "ip": "$context.identity.sourceIp",
    "caller": "$context.identity.caller",
    "user": "$context.identity.user",
    "requestTime": "$context.requestTime",
    "eventType": "$context.eventType",
    "routeKey": "$context.routeKey",
    "status": "$context.status",
    "connectionId": "$context.connectionId",
    "integrationLatency": "$context.integrationLatency",
}


class LiveLogsApi(Construct):
    """WebSocket API with IAM on `$connect`, a connections table and the fan-out fed by table streams."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runs_table: dynamodb.ITable,
        logs_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        self.roles: list[iam.Role] = []
        self.connections_table = self._build_connections_table()
        self.dependencies = dependencies_layer(self, "Dependencies")
        self.powertools = lambda_.LayerVersion.from_layer_version_arn(
            self, "Powertools", powertools_layer_arn()
        )
        self.ws_function = self._build_function("Ws", WS_HANDLER, "flowdeck-ws", Duration.seconds(29))
        # No active tracing on the fan-out: it runs for every stream batch of every run (most of
        # Flowdeck's own X-Ray bill); its failures go to a DLQ and its logs.
        self.fanout_function = self._build_function(
            "Fanout",
            FANOUT_HANDLER,
            "flowdeck-fanout",
            Duration.minutes(1),
            tracing=lambda_.Tracing.PASS_THROUGH,
        )
        self.api, self.stage = self._build_api()
        self.dead_letters = self._build_dead_letter_queue()
        self._connect_streams(runs_table, logs_table)
        self._grant(runs_table, logs_table)
        self._suppress_findings()

    def _build_connections_table(self) -> dynamodb.Table:
        # API Gateway ends a connection after 2 h; a missed $disconnect leaves an item TTL removes.
        table = encrypted_table(
            self,
            "Connections",
            partition_key=dynamodb.Attribute(name="connection_id", type=dynamodb.AttributeType.STRING),
            # Connections are transient: nothing to keep when the stack goes.
            removal_policy=RemovalPolicy.DESTROY,
        )
        table.add_global_secondary_index(
            index_name=CONNECTIONS_BY_RUN_INDEX,
            partition_key=dynamodb.Attribute(name="run_id", type=dynamodb.AttributeType.STRING),
            projection_type=dynamodb.ProjectionType.ALL,
        )
        return table

    def _build_function(
        self,
        prefix: str,
        handler: str,
        service: str,
        timeout: Duration,
        tracing: lambda_.Tracing = lambda_.Tracing.ACTIVE,
    ) -> lambda_.Function:
        built = python_handler(
            self,
            prefix,
            handler=handler,
            description=f"Flowdeck {service} handler",
            layers=[self.powertools, self.dependencies],
            timeout=timeout,
            tracing=tracing,
            environment={
                ENV_CONNECTIONS_TABLE: self.connections_table.table_name,
                ENV_WORKFLOWS_DIR: LAMBDA_WORKFLOWS_DIR,
                "POWERTOOLS_SERVICE_NAME": service,
            },
        )
        self.roles.append(built.role)
        return built.function

    def _build_api(self) -> tuple[apigwv2.WebSocketApi, apigwv2.WebSocketStage]:
        integration = integrations.WebSocketLambdaIntegration("Ws", self.ws_function)
        api = apigwv2.WebSocketApi(
            self,
            "Api",
            description="Flowdeck live view (SPEC §4): subscribe to a run's status and output",
            # SigV4 on the handshake: the same IAM identities as the REST API.
            connect_route_options=apigwv2.WebSocketRouteOptions(
                integration=integration, authorizer=authorizers.WebSocketIamAuthorizer()
            ),
            disconnect_route_options=apigwv2.WebSocketRouteOptions(integration=integration),
            route_selection_expression="$request.body.action",
        )
        api.add_route(SUBSCRIBE_ROUTE, integration=integration)
        access_logs = logs.LogGroup(self, "AccessLogs", retention=LOG_RETENTION)
        stage = apigwv2.WebSocketStage(
            self,
            "Stage",
            web_socket_api=api,
            stage_name=WS_STAGE,
            auto_deploy=True,
            throttle=apigwv2.ThrottleSettings(
                rate_limit=THROTTLE_RATE_LIMIT, burst_limit=THROTTLE_BURST_LIMIT
            ),
        )
        # Execution logs; frames carry step output, so never the message bodies (data trace off).
        cfn_stage = cast(apigwv2.CfnStage, stage.node.default_child)
        cfn_stage.access_log_settings = apigwv2.CfnStage.AccessLogSettingsProperty(
            destination_arn=access_logs.log_group_arn, format=json.dumps(ACCESS_LOG_FORMAT)
        )
        cfn_stage.add_property_override("DefaultRouteSettings.LoggingLevel", "INFO")
        cfn_stage.add_property_override("DefaultRouteSettings.DataTraceEnabled", False)
        for function in (self.ws_function, self.fanout_function):
            function.add_environment(ENV_WEBSOCKET_ENDPOINT, stage.callback_url)
        return api, stage

    def _build_dead_letter_queue(self) -> sqs.Queue:
        return sqs.Queue(
            self,
            "FanoutDeadLetters",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )

    def _connect_streams(self, runs_table: dynamodb.ITable, logs_table: dynamodb.ITable) -> None:
        for table in (runs_table, logs_table):
            self.fanout_function.add_event_source(
                sources.DynamoEventSource(
                    table,
                    starting_position=lambda_.StartingPosition.LATEST,
                    batch_size=STREAM_BATCH_SIZE,
                    # No batching window: a viewer waits for each batch (SPEC goal p95 <= 250 ms).
                    max_batching_window=Duration.seconds(0),
                    retry_attempts=STREAM_RETRY_ATTEMPTS,
                    bisect_batch_on_error=True,
                    on_failure=sources.SqsDlq(self.dead_letters),
                )
            )
        self.fanout_function.add_environment(ENV_RUNS_TABLE, runs_table.table_name)
        self.fanout_function.add_environment(ENV_LOGS_TABLE, logs_table.table_name)
        self.ws_function.add_environment(ENV_RUNS_TABLE, runs_table.table_name)
        self.ws_function.add_environment(ENV_LOGS_TABLE, logs_table.table_name)

    def _grant(self, runs_table: dynamodb.ITable, logs_table: dynamodb.ITable) -> None:
        for function in (self.ws_function, self.fanout_function):
            self.connections_table.grant_read_write_data(function)
            # The snapshot on subscribe reads the run; replay and catch-up read the log batches.
            runs_table.grant_read_data(function)
            logs_table.grant_read_data(function)
            self.api.grant_manage_connections(function)

    def _suppress_findings(self) -> None:
        for role in self.roles:
            NagSuppressions.add_resource_suppressions(
                role,
                [
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason="X-Ray PutTraceSegments/PutTelemetryRecords (active tracing) and DynamoDB "
                        "stream listing do not support resource-level permissions.",
                        applies_to=["Resource::*"],
                    ),
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason="Table grants include the table's indexes (index/*): the by-run index of "
                        "the connections table, read-only on the runs and logs tables.",
                        applies_to=[{"regex": "/^Resource::.*/index/\\*$/g"}],
                    ),
                    NagPackSuppression(
                        id="AwsSolutions-IAM5",
                        reason="execute-api:ManageConnections on this WebSocket API's @connections/* only: "
                        "connection ids are created per viewer at run time.",
                        applies_to=[{"regex": "/^Resource::arn:.*execute-api:.*/@connections/\\*$/g"}],
                    ),
                ],
                apply_to_children=True,
            )
        NagSuppressions.add_resource_suppressions(
            self.api,
            [
                NagPackSuppression(
                    id="AwsSolutions-APIG4",
                    reason="A WebSocket API authorizes on $connect only (IAM/SigV4 here); $disconnect and "
                    "subscribe run on the already authorized connection and cannot carry an authorizer.",
                ),
            ],
            apply_to_children=True,
        )
        NagSuppressions.add_resource_suppressions(
            self.dead_letters,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="This queue is the fan-out's dead-letter queue (failed stream batches).",
                )
            ],
        )


class LiveStack(Stack):
    """The live view: WebSocket API, connections table, fan-out from the runs and logs table streams."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        runs_table: dynamodb.ITable,
        logs_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id, description="Flowdeck live view: WebSocket API and fan-out")
        self.live_logs = LiveLogsApi(self, "LiveLogsApi", runs_table=runs_table, logs_table=logs_table)
