"""What routes depend on: the RunService (built once, lazily) and the caller's identity."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from aws_lambda_powertools.event_handler import Request
from aws_lambda_powertools.event_handler.openapi.params import Path
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from flowdeck import aws
from flowdeck.catalog import Catalog
from flowdeck.config import get_settings, per_settings
from flowdeck.constants import USER_HEADER
from flowdeck.costs.calculator import load_calculator
from flowdeck.errors import BadRequest
from flowdeck.identity import UserDirectory, signed_principal, user_directory
from flowdeck.runs.artifacts import ArtifactService
from flowdeck.runs.costs import CostService
from flowdeck.runs.logs import LogService
from flowdeck.runs.service import RunService
from flowdeck.stores.artifacts import ArtifactStore
from flowdeck.stores.executions import Executions
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore
from flowdeck.triggers.switch import TriggerSwitch

ANONYMOUS = "anonymous"
MAX_USER_LENGTH = 256
# Flowdeck's run ids are under 100 characters; DynamoDB refuses a key over 2,048 bytes with an error
# that would be a 5xx, so a longer id is refused first (422), whatever its characters' width.
MAX_RUN_ID_LENGTH = 512
RunId = Annotated[str, Path(max_length=MAX_RUN_ID_LENGTH, description="The run's id.")]


@per_settings
def run_service() -> RunService:
    """The service over the configured table, state machines and workflows (one per container)."""
    settings = get_settings()
    switch = (
        TriggerSwitch(
            aws.client("scheduler", settings), aws.client("events", settings), settings.schedule_group
        )
        if settings.manage_triggers
        else None
    )
    return RunService(
        Catalog.from_dir(settings.workflows_dir),
        RunStore(settings.runs_table, artifacts=ArtifactStore(settings.artifacts_bucket)),
        Executions(settings.state_machine_arn_prefix),
        switch,
    )


@per_settings
def artifact_service() -> ArtifactService:
    """The artifact use cases over the configured table and bucket."""
    settings = get_settings()
    store = ArtifactStore(settings.artifacts_bucket)
    return ArtifactService(RunStore(settings.runs_table, artifacts=store), store)


@per_settings
def log_service() -> LogService:
    """The log use cases over the configured logs and runs tables."""
    settings = get_settings()
    client = aws.client("dynamodb", settings)
    return LogService(LogStore(settings.logs_table, client), RunStore(settings.runs_table, client))


@per_settings
def cost_service() -> CostService:
    """The cost use cases with the configured calculator."""
    settings = get_settings()
    calculator = load_calculator(settings.cost_calculator, settings.rate_card)
    runs = RunStore(settings.runs_table, aws.client("dynamodb", settings))
    return CostService(runs, calculator, settings.region)


@per_settings
def directory() -> UserDirectory | None:
    """The dashboard's user pool members by `sub` (AWS only), cached per container."""
    return user_directory(get_settings())


def caller(request: Request) -> str:
    """The signed person or IAM principal on AWS; locally the X-Flowdeck-User header when trusted."""
    event = request.resolved_event
    # A SigV4 identity cannot be forged by the client, so it wins over any header.
    if isinstance(event, APIGatewayProxyEvent):
        identity = event.raw_event.get("requestContext", {}).get("identity") or {}
        if principal := signed_principal(identity, directory()):
            return principal
    if not get_settings().trust_user_header:
        return ANONYMOUS
    user = (request.headers.get(USER_HEADER) or "").strip()
    if len(user) > MAX_USER_LENGTH:
        raise BadRequest(f"{USER_HEADER} is longer than {MAX_USER_LENGTH} characters")
    return user or ANONYMOUS


def raw_body(event: APIGatewayProxyEvent) -> bytes:
    """The body exactly as the sender signed it (API Gateway base64-encodes binary bodies)."""
    body = event.body or ""
    if not event.is_base64_encoded:
        return body.encode("utf-8")
    try:
        return base64.b64decode(body, validate=True)
    except binascii.Error:
        raise BadRequest("the request body is not valid base64") from None
