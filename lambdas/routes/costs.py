"""GET /runs/{id}/costs and GET /workflows/{wf}/costs: breakdowns and trends, priced now."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.runs.costs import MAX_TREND_RUNS, CostService
from lambdas.deps import cost_service
from lambdas.responses import error_docs

router = APIGatewayRouter()

Service = Annotated[CostService, Depends(cost_service)]


@router.get("/runs/<run_id>/costs", summary="A run's costs", tags=["costs"], responses=error_docs(404, 422))
def run_costs(run_id: str, service: Service) -> dict[str, Any]:
    """Total, by model (tokens and cost), by compute (seconds and cost per resource class) and per step."""
    return service.run_costs(run_id).model_dump(mode="json")


@router.get(
    "/workflows/<wf>/costs", summary="A workflow's cost trend", tags=["costs"], responses=error_docs(422)
)
def workflow_costs(
    wf: str, service: Service, last: Annotated[int, Query(ge=1, le=MAX_TREND_RUNS)] = 30
) -> dict[str, Any]:
    """Cost and duration of the last runs, oldest first; a run above median + 3·MAD of the runs before it
    is flagged with the step that grew most."""
    return service.workflow_costs(wf, last).model_dump(mode="json")
