"""Decisions on a step paused on failure: Retry step and Skip step."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck import aws
from flowdeck.config import get_settings, per_settings
from flowdeck.control.pause import Decided, PauseDecisions, StepDecision
from flowdeck.stores.runs import RunStore
from lambdas.deps import RunId, caller, run_service
from lambdas.responses import error_docs, not_allowed_docs

router = APIGatewayRouter()


@per_settings
def pause_decisions() -> PauseDecisions:
    """The decisions over the configured table and Step Functions."""
    settings = get_settings()
    return PauseDecisions(
        RunStore(settings.runs_table, aws.client("dynamodb", settings)),
        aws.client("stepfunctions", settings),
        run_service().permissions,
    )


Decisions = Annotated[PauseDecisions, Depends(pause_decisions)]
Caller = Annotated[str, Depends(caller)]
OptionalBody = Annotated[StepDecision | None, Body()]

_ANSWERS: dict[int, OpenAPIResponse] = {
    202: {
        "description": "Decision recorded; the run moves on",
        "content": {content_types.APPLICATION_JSON: {"model": Decided}},
    },
    **error_docs(400, 404, 409, 413, 422),
}


@router.post(
    "/runs/<run_id>/steps/<step>/retry",
    summary="Retry a step paused on failure",
    description=(
        "For a step with `on_failure: pause` that failed and now waits (status `waiting`): runs it again as "
        "a new attempt; its earlier attempts and the other steps' outputs are kept. 404 `RunNotFound` or "
        "`StepNotFound`; 409 `StepNotWaiting` when the step is not paused (it runs, ended, or someone "
        "decided first). Optional body `{comment}`. An empty body means `{}`. 403 NotAllowed when the "
        "workflow's `permissions.retry` does not name the caller."
    ),
    tags=["runs"],
    responses=_ANSWERS | not_allowed_docs("retry"),
)
def retry_step(
    run_id: RunId, step: str, decisions: Decisions, user: Caller, body: OptionalBody = None
) -> Response[Decided]:
    """POST /runs/{run_id}/steps/{step}/retry."""
    answer = decisions.decide(run_id, step, "retry", body or StepDecision(), caller=user)
    return Response(202, content_types.APPLICATION_JSON, answer)


@router.post(
    "/runs/<run_id>/steps/<step>/skip",
    summary="Skip a step paused on failure",
    description=(
        "For a paused step whose definition says `allow_skip: true`: records it `skipped` and the run "
        "goes on with the next step. 409 `SkipNotAllowed` without `allow_skip`, `StepNotWaiting` when the "
        "step is not paused; 404 `RunNotFound` or `StepNotFound`. Optional body `{comment}`. 403 NotAllowed "
        "when the workflow's `permissions.skip` does not name the caller."
    ),
    tags=["runs"],
    responses=_ANSWERS | not_allowed_docs("skip"),
)
def skip_step(
    run_id: RunId, step: str, decisions: Decisions, user: Caller, body: OptionalBody = None
) -> Response[Decided]:
    """POST /runs/{run_id}/steps/{step}/skip."""
    answer = decisions.decide(run_id, step, "skip", body or StepDecision(), caller=user)
    return Response(202, content_types.APPLICATION_JSON, answer)
