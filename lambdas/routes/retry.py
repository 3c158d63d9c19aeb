"""Retry a finished run: a new run, linked by `retry_of`, from the failed step or a chosen one."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.control.retry import Retries, RetryRun
from flowdeck.runs.views import RetryStarted
from lambdas.deps import RunId, caller, run_service
from lambdas.responses import error_docs, not_allowed_docs

router = APIGatewayRouter()


def retries() -> Retries:
    """Retries over the configured run service (so a retry starts like any run)."""
    return Retries(run_service())


Service = Annotated[Retries, Depends(retries)]
Caller = Annotated[str, Depends(caller)]
OptionalBody = Annotated[RetryRun | None, Body()]


@router.post(
    "/runs/<run_id>/retry",
    summary="Retry a finished run",
    description=(
        "Starts a new run (trigger `retry`) linked to this one by `retry_of`. Without `from_step` it "
        "starts at the failed step(s); with it, at that step (the first step runs everything again). "
        "Steps before the start point are not run again: their outputs and artifacts are reused. "
        "`inputs` are laid over the old run's inputs. 409 when the run has not finished, or when "
        "nothing failed and no `from_step` is given. 403 NotAllowed when the workflow's `permissions.retry` "
        "does not name the caller."
    ),
    tags=["runs"],
    responses={
        202: {
            "description": "Retry started (or already started with this idempotency key)",
            "content": {content_types.APPLICATION_JSON: {"model": RetryStarted}},
        },
        **error_docs(400, 404, 409, 413, 422),
        **not_allowed_docs("retry"),
    },
)
def retry_run(
    run_id: RunId, service: Service, user: Caller, body: OptionalBody = None
) -> Response[RetryStarted]:
    """POST /runs/{id}/retry."""
    started = service.retry(run_id, body or RetryRun(), caller=user)
    return Response(202, content_types.APPLICATION_JSON, RetryStarted(**started))
