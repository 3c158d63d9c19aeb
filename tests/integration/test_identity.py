"""Every person keeps their identity: recorded API Gateway events (REST and `$connect`) with and without
a Cognito identity-pool sign-in, against moto's user pool."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from flowdeck.config import get_settings
from flowdeck.errors import NotAllowed
from flowdeck.identity import UserDirectory, cognito_sign_in
from lambdas import deps, ws
from tests.integration.test_api import Api

EVENTS = Path(__file__).parent.parent / "events"
JANE = "jane@example.com"
CLI_USER = "arn:aws:iam::123456789012:user/ci-deployer"


def recorded(name: str) -> dict[str, Any]:
    return dict(json.loads((EVENTS / name).read_text()))


def signed_in_as(event: dict[str, Any], pool_id: str, sub: str) -> dict[str, Any]:
    """The recorded event, its provider naming this pool and member (moto makes its own ids)."""
    event = copy.deepcopy(event)
    issuer = f"cognito-idp.us-east-1.amazonaws.com/{pool_id}"
    event["requestContext"]["identity"]["cognitoAuthenticationProvider"] = (
        f"{issuer},{issuer}:CognitoSignIn:{sub}"
    )
    return event


def signed_by_iam(event: dict[str, Any]) -> dict[str, Any]:
    """The recorded event as the CLI sends it: an IAM user's SigV4, no identity pool."""
    event = copy.deepcopy(event)
    identity = event["requestContext"]["identity"]
    for key in [k for k in identity if k.startswith("cognito")]:
        del identity[key]
    identity.update(userArn=CLI_USER, caller="AIDAEXAMPLEUSERID", user="AIDAEXAMPLEUSERID")
    return event


@pytest.fixture
def pool(flowdeck_aws: tuple[Any, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """A user pool (e-mail as username) with Jane verified and Ned not; the API configured for it."""
    idp = boto3.client("cognito-idp", region_name="us-east-1")
    pool_id = idp.create_user_pool(PoolName="flowdeck", UsernameAttributes=["email"])["UserPool"]["Id"]
    subs = {}
    for email, verified in ((JANE, "true"), ("ned@example.com", "false")):
        user = idp.admin_create_user(
            UserPoolId=pool_id,
            Username=email,
            UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": verified}],
        )["User"]
        subs[email] = next(a["Value"] for a in user["Attributes"] if a["Name"] == "sub")
    # As on AWS: only the signed identity counts, never the X-Flowdeck-User header.
    monkeypatch.setenv("FLOWDECK_TRUST_USER_HEADER", "false")
    monkeypatch.setenv("FLOWDECK_USER_POOL_ID", pool_id)
    get_settings.cache_clear()
    yield {"id": pool_id, "jane": subs[JANE], "ned": subs["ned@example.com"]}
    deps.directory.cache_clear()


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    return Api(*flowdeck_aws, lambda_context)


def started_by(api: Api) -> str:
    [execution] = api.executions("deploy")
    return str(json.loads(execution["input"])["started_by"])


def test_provider_names_the_pool_and_the_member() -> None:
    identity = recorded("apigw_rest_cognito_start_run.json")["requestContext"]["identity"]

    sign_in = cognito_sign_in(identity)

    assert sign_in is not None
    assert (sign_in.user_pool_id, sign_in.sub) == (
        "us-east-1_Flowdeck1",
        "0b5e1f4c-1111-4a2b-9c3d-5e6f7a8b9c0d",
    )
    assert cognito_sign_in({"userArn": CLI_USER}) is None
    assert (
        cognito_sign_in({"cognitoAuthenticationProvider": "graph.facebook.com,graph.facebook.com:1"}) is None
    )


def test_rest_call_from_the_dashboard_is_the_person_not_the_role_nor_the_forged_header(
    api: Api, pool: dict[str, str]
) -> None:
    event = signed_in_as(recorded("apigw_rest_cognito_start_run.json"), pool["id"], pool["jane"])
    assert event["headers"]["X-Flowdeck-User"] == "mallory"
    assert event["queryStringParameters"] == {"user": "mallory"}

    status, body = api.invoke(event)

    assert status == 202, body
    assert started_by(api) == JANE


def test_forged_header_loses_to_the_signed_person_even_where_headers_are_trusted(
    api: Api, pool: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWDECK_TRUST_USER_HEADER", "true")
    get_settings.cache_clear()
    event = signed_in_as(recorded("apigw_rest_cognito_start_run.json"), pool["id"], pool["jane"])

    assert api.invoke(event)[0] == 202
    assert started_by(api) == JANE


def test_rest_call_from_the_cli_keeps_its_iam_principal(api: Api, pool: dict[str, str]) -> None:
    assert api.invoke(signed_by_iam(recorded("apigw_rest_cognito_start_run.json")))[0] == 202
    assert started_by(api) == CLI_USER


def test_unverified_email_or_another_pool_is_403_and_starts_nothing(api: Api, pool: dict[str, str]) -> None:
    template = recorded("apigw_rest_cognito_start_run.json")
    for event in (
        signed_in_as(template, pool["id"], pool["ned"]),
        signed_in_as(template, "us-east-1_SomeoneElse", pool["jane"]),
    ):
        status, body = api.invoke(event)
        assert (status, body["error"]) == (403, "NotAllowed"), body
    assert api.executions("deploy") == []


def test_members_email_is_read_once_then_cached(pool: dict[str, str]) -> None:
    calls: list[str] = []
    idp = boto3.client("cognito-idp", region_name="us-east-1")

    class Counting:
        def admin_get_user(self, **kwargs: Any) -> Any:
            calls.append(kwargs["Username"])
            return idp.admin_get_user(**kwargs)

    now = [0.0]
    directory = UserDirectory(pool["id"], Counting(), ttl_seconds=60, clock=lambda: now[0])
    assert [directory.email(pool["jane"]) for _ in range(3)] == [JANE] * 3
    now[0] = 61.0
    assert directory.email(pool["jane"]) == JANE
    assert calls == [pool["jane"], pool["jane"]]
    with pytest.raises(NotAllowed):
        directory.email(pool["ned"])


@pytest.fixture
def connections(pool: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, str]]]:
    """What `$connect` recorded: (connection id, user)."""
    recorded_connects: list[tuple[str, str]] = []

    class Live:
        def connect(self, connection_id: str, user: str) -> None:
            recorded_connects.append((connection_id, user))

    monkeypatch.setattr(ws, "live_service", Live)
    yield recorded_connects


def test_websocket_connect_from_the_dashboard_is_the_person(
    connections: list[tuple[str, str]], pool: dict[str, str], lambda_context: Any
) -> None:
    event = signed_in_as(recorded("ws_connect_cognito.json"), pool["id"], pool["jane"])

    assert ws.lambda_handler(event, lambda_context) == {"statusCode": 200}
    assert connections == [("Kx2pQeH3oAMCKbA=", JANE)]


def test_websocket_connect_from_the_cli_keeps_its_iam_principal(
    connections: list[tuple[str, str]], lambda_context: Any
) -> None:
    assert ws.lambda_handler(signed_by_iam(recorded("ws_connect_cognito.json")), lambda_context) == {
        "statusCode": 200
    }
    assert connections == [("Kx2pQeH3oAMCKbA=", CLI_USER)]


def test_websocket_connect_with_an_unverified_member_is_refused(
    connections: list[tuple[str, str]], pool: dict[str, str], lambda_context: Any
) -> None:
    event = signed_in_as(recorded("ws_connect_cognito.json"), pool["id"], pool["ned"])

    assert ws.lambda_handler(event, lambda_context) == {"statusCode": 403}
    assert connections == []
