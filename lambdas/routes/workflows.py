"""GET /workflows and GET /workflows/{wf}: definitions with the compiled graph."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.service import RunService
from lambdas.deps import run_service
from lambdas.responses import error_docs

router = APIGatewayRouter()

Service = Annotated[RunService, Depends(run_service)]


@router.get("/workflows", summary="List workflows", tags=["workflows"])
def list_workflows(service: Service) -> dict[str, Any]:
    """Every loaded definition: name, description, inputs, steps and triggers."""
    return {"workflows": service.list_workflows()}


@router.get("/workflows/<wf>", summary="Get a workflow", tags=["workflows"], responses=error_docs(404, 422))
def get_workflow(wf: str, service: Service) -> dict[str, Any]:
    """One definition with its compiled graph (nodes, edges, layout) and states."""
    return service.get_workflow(wf)
