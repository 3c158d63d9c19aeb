"""GET /runs/{id}/costs and GET /workflows/{wf}/costs: breakdowns and trends, priced now."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.costs.models import RunCosts, WorkflowCosts
from flowdeck.runs.costs import MAX_TREND_RUNS, CostService
from lambdas.deps import RunId, cost_service
from lambdas.responses import answer_docs, error_docs

router = APIGatewayRouter()

Service = Annotated[CostService, Depends(cost_service)]


@router.get(
    "/runs/<run_id>/costs",
    summary="A run's costs",
    tags=["costs"],
    responses={**answer_docs(200, "The run's cost breakdown", RunCosts), **error_docs(404, 422)},
)
def run_costs(run_id: RunId, service: Service) -> RunCosts:
    """Total, by model (tokens and cost), by compute (seconds and cost per resource class) and per step."""
    return service.run_costs(run_id)


@router.get(
    "/workflows/<wf>/costs",
    summary="A workflow's cost trend",
    tags=["costs"],
    responses={**answer_docs(200, "The workflow's last runs, priced", WorkflowCosts), **error_docs(422)},
)
def workflow_costs(
    wf: str, service: Service, last: Annotated[int, Query(ge=1, le=MAX_TREND_RUNS)] = 30
) -> WorkflowCosts:
    """Cost and duration of the last runs, oldest first; a run above median + 3·MAD of the runs before it
    is flagged with the step that grew most."""
    return service.workflow_costs(wf, last)
