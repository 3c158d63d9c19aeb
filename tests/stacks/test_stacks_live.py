"""LiveStack: WebSocket API (IAM on $connect), connections table, fan-out from both table streams."""

from __future__ import annotations

from aws_cdk import assertions
from aws_cdk.assertions import Match
from stack_helpers import as_list, policy_statements, resources_of

from flowdeck.constants import ENV_CONNECTIONS_TABLE, ENV_WEBSOCKET_ENDPOINT, TTL_ATTRIBUTE
from stacks.app_builder import LIVE_STACK


def _live(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[LIVE_STACK]


def test_websocket_api_routes_on_the_body_action(templates: dict[str, assertions.Template]) -> None:
    live = _live(templates)
    live.has_resource_properties(
        "AWS::ApiGatewayV2::Api",
        {"ProtocolType": "WEBSOCKET", "RouteSelectionExpression": "$request.body.action"},
    )
    routes = {
        r["Properties"]["RouteKey"]: r["Properties"]
        for r in resources_of(live, "AWS::ApiGatewayV2::Route").values()
    }
    assert set(routes) == {"$connect", "$disconnect", "subscribe"}
    assert routes["$connect"]["AuthorizationType"] == "AWS_IAM"


def test_stage_deploys_itself_throttles_and_logs_without_bodies(
    templates: dict[str, assertions.Template],
) -> None:
    _live(templates).has_resource_properties(
        "AWS::ApiGatewayV2::Stage",
        {
            "AutoDeploy": True,
            "AccessLogSettings": {
                "DestinationArn": Match.any_value(),
                "Format": Match.string_like_regexp("routeKey"),
            },
            "DefaultRouteSettings": Match.object_like(
                {"LoggingLevel": "INFO", "DataTraceEnabled": False, "ThrottlingRateLimit": Match.any_value()}
            ),
        },
    )


def test_connections_table_has_ttl_by_run_index_pitr_and_encryption(
    templates: dict[str, assertions.Template],
) -> None:
    _live(templates).has_resource_properties(
        "AWS::DynamoDB::Table",
        {
            "KeySchema": [{"AttributeName": "connection_id", "KeyType": "HASH"}],
            "TimeToLiveSpecification": {"AttributeName": TTL_ATTRIBUTE, "Enabled": True},
            "GlobalSecondaryIndexes": [Match.object_like({"IndexName": "by-run"})],
            "PointInTimeRecoverySpecification": {"PointInTimeRecoveryEnabled": True},
            "SSESpecification": {"SSEEnabled": True},
        },
    )


def test_fanout_reads_both_table_streams_with_retries_bisect_and_a_dlq(
    templates: dict[str, assertions.Template],
) -> None:
    mappings = list(resources_of(_live(templates), "AWS::Lambda::EventSourceMapping").values())
    assert len(mappings) == 2  # runs table stream, logs table stream
    for mapping in mappings:
        properties = mapping["Properties"]
        assert properties["StartingPosition"] == "LATEST"
        assert properties["BisectBatchOnFunctionError"] is True
        assert properties["MaximumRetryAttempts"] == 3
        assert "OnFailure" in properties["DestinationConfig"]
    _live(templates).has_resource_properties("AWS::SQS::Queue", {"SqsManagedSseEnabled": True})


def test_handlers_know_the_table_and_management_endpoint(templates: dict[str, assertions.Template]) -> None:
    functions = resources_of(_live(templates), "AWS::Lambda::Function").values()
    handlers = {f["Properties"]["Handler"]: f["Properties"]["Environment"]["Variables"] for f in functions}
    assert set(handlers) >= {"lambdas.ws.lambda_handler", "lambdas.fanout.lambda_handler"}
    for variables in handlers.values():
        assert {ENV_CONNECTIONS_TABLE, ENV_WEBSOCKET_ENDPOINT} <= set(variables)


def test_handlers_may_manage_connections_of_this_api_only(templates: dict[str, assertions.Template]) -> None:
    for role in ("WsRole", "FanoutRole"):
        statements = policy_statements(_live(templates), role)
        manage = [s for s in statements if "execute-api:ManageConnections" in as_list(s["Action"])]
        assert manage, role
        assert "@connections/*" in str(manage[0]["Resource"])
        assert all(s["Resource"] != "*" for s in manage)
