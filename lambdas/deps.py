"""What routes depend on: the RunService (built once, lazily) and the caller's identity."""

from __future__ import annotations

from functools import lru_cache

from aws_lambda_powertools.event_handler import Request
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from flowdeck.catalog import Catalog
from flowdeck.config import get_settings
from flowdeck.constants import USER_HEADER
from flowdeck.errors import BadRequest
from flowdeck.service import RunService
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore

ANONYMOUS = "anonymous"
MAX_USER_LENGTH = 256


@lru_cache(maxsize=1)
def run_service() -> RunService:
    """The service over the configured table, state machines and workflows (one per container)."""
    settings = get_settings()
    return RunService(
        Catalog.from_dir(settings.workflows_dir),
        RunStore(settings.runs_table),
        Executions(settings.state_machine_arn_prefix),
    )


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
