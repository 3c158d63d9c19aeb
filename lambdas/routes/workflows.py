"""GET /workflows and GET /workflows/{wf}: definitions with the compiled graph; PUT .../state pauses."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.control.workflow_state import SetWorkflowState
from flowdeck.definition.views import WorkflowDetail, WorkflowList, WorkflowStateChanged
from flowdeck.runs.service import RunService
from lambdas.deps import caller, run_service
from lambdas.responses import answer_docs, error_docs, not_allowed_docs

router = APIGatewayRouter()

Service = Annotated[RunService, Depends(run_service)]
Caller = Annotated[str, Depends(caller)]


@router.get(
    "/workflows",
    summary="List workflows",
    tags=["workflows"],
    responses=answer_docs(200, "Every workflow definition", WorkflowList),
)
def list_workflows(service: Service, user: Caller) -> WorkflowList:
    """Every definition: name, description, inputs, steps, triggers, `active` (who paused it, why) and
    `actions` (what the caller may do: `start`, `pause`)."""
    return WorkflowList.model_validate({"workflows": service.list_workflows(user)})


@router.get(
    "/workflows/<wf>",
    summary="Get a workflow",
    tags=["workflows"],
    responses={**answer_docs(200, "The workflow with its graph", WorkflowDetail), **error_docs(404, 422)},
)
def get_workflow(wf: str, service: Service, user: Caller) -> WorkflowDetail:
    """One definition with its compiled graph (nodes, edges, layout), states and the caller's `actions`."""
    return WorkflowDetail.model_validate(service.get_workflow(wf, user))


@router.put(
    "/workflows/<wf>/state",
    summary="Pause or resume a workflow",
    description=(
        "`{active: false, reason?}` pauses the workflow: from this answer on it starts no run from any "
        "trigger (manual, API and retry starts answer 409 WorkflowPaused; webhook, GitHub, schedule and "
        "event deliveries are recorded `refused` with the reason in its trigger history; on AWS its "
        "Scheduler schedules and EventBridge rules are disabled). Runs already under way go on; runs "
        "queued by its concurrency limit stay queued. `{active: true}` resumes it (schedules and rules "
        "enabled again, queued runs start in order). Repeating either is fine: `changed` says whether "
        "this call changed the state, and a second pause keeps the first one's who, when and why. "
        "A workflow whose `permissions.pause` does not name the caller answers 403 NotAllowed."
    ),
    tags=["workflows"],
    responses={
        **answer_docs(
            200, "The workflow's state now, and whether this call changed it", WorkflowStateChanged
        ),
        **error_docs(400, 404, 413, 422),
        **not_allowed_docs("pause"),
    },
)
def set_workflow_state(
    wf: str, service: Service, user: Caller, body: Annotated[SetWorkflowState, Body()]
) -> WorkflowStateChanged:
    """PUT /workflows/{wf}/state."""
    return WorkflowStateChanged.model_validate(service.set_workflow_state(wf, body, user))
