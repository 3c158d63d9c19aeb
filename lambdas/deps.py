"""What routes depend on: the RunService (built once, lazily) and the caller's identity."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.event_handler import Request
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from flowdeck import aws
from flowdeck.artifact_service import ArtifactService
from flowdeck.catalog import Catalog
from flowdeck.config import get_settings
from flowdeck.constants import USER_HEADER
from flowdeck.cost_service import CostService
from flowdeck.costs.calculator import load_calculator
from flowdeck.errors import BadRequest
from flowdeck.logs_service import LogService
from flowdeck.service import RunService
from flowdeck.stores.artifacts import ArtifactStore
from flowdeck.stores.executions import Executions
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore

ANONYMOUS = "anonymous"
MAX_USER_LENGTH = 256


@lru_cache(maxsize=1)
def run_service() -> RunService:
    """The service over the configured table, state machines and workflows (one per container)."""
    settings = get_settings()
    return RunService(
        Catalog.from_dir(settings.workflows_dir),
        RunStore(settings.runs_table, artifacts=ArtifactStore(settings.artifacts_bucket)),
        Executions(settings.state_machine_arn_prefix),
    )


_artifact_services: list[tuple[object, ArtifactService]] = []


def artifact_service() -> ArtifactService:
    """The artifact use cases over the configured table and bucket, rebuilt when the settings are."""
    settings = get_settings()
    # Keyed by the settings object: whoever re-reads the settings (tests, the local stack) gets fresh clients.
    if not _artifact_services or _artifact_services[0][0] is not settings:
        store = ArtifactStore(settings.artifacts_bucket)
        service = ArtifactService(RunStore(settings.runs_table, artifacts=store), store)
        _artifact_services[:] = [(settings, service)]
    return _artifact_services[0][1]


_log_services: list[tuple[object, LogService]] = []


def log_service() -> LogService:
    """The log use cases over the configured logs and runs tables, rebuilt when the settings are."""
    settings = get_settings()
    if not _log_services or _log_services[0][0] is not settings:
        client = aws.client("dynamodb", settings)
        service = LogService(LogStore(settings.logs_table, client), RunStore(settings.runs_table, client))
        _log_services[:] = [(settings, service)]
    return _log_services[0][1]


_cost_services: list[tuple[object, CostService]] = []


def cost_service() -> CostService:
    """The cost use cases with the configured calculator, rebuilt when the settings are."""
    settings = get_settings()
    if not _cost_services or _cost_services[0][0] is not settings:
        calculator = load_calculator(settings.cost_calculator, settings.rate_card)
        runs = RunStore(settings.runs_table, aws.client("dynamodb", settings))
        _cost_services[:] = [(settings, CostService(runs, calculator, settings.region))]
    return _cost_services[0][1]


def caller(request: Request) -> str:
    """The IAM principal on AWS; locally the X-Flowdeck-User header when trusted; else anonymous."""
    event = request.resolved_event
    # IAM (SigV4) identity cannot be forged by the client, so it wins over any header.
    if isinstance(event, APIGatewayProxyEvent):
        identity = event.request_context.identity
        if principal := identity.user_arn or identity.caller:
            return principal
    if not get_settings().trust_user_header:
        return ANONYMOUS
    user = (request.headers.get(USER_HEADER) or "").strip()
    if len(user) > MAX_USER_LENGTH:
        raise BadRequest(f"{USER_HEADER} is longer than {MAX_USER_LENGTH} characters")
    return user or ANONYMOUS
