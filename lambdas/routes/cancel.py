"""Cancel a run: graceful, force, or graceful then the steps' cleanup commands."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck import aws
from flowdeck.config import get_settings, per_settings
from flowdeck.control.cancel import Cancelled, CancelRun, RunCanceller
from flowdeck.stores.fresh_tasks import FreshTasks
from flowdeck.stores.runs import RunStore
from lambdas.deps import RunId, caller, run_service
from lambdas.responses import error_docs, not_allowed_docs

router = APIGatewayRouter()


@per_settings
def run_canceller() -> RunCanceller:
    """The canceller over the configured table, queue and state machines."""
    settings = get_settings()
    return RunCanceller(
        run_service().catalog,
        RunStore(settings.runs_table, aws.client("dynamodb", settings)),
        aws.client("stepfunctions", settings),
        aws.client("sqs", settings),
        settings.steps_queue_url,
        settings.state_machine_arn_prefix,
        FreshTasks(settings.fresh_cluster, aws.client("ecs", settings)) if settings.fresh_cluster else None,
    )


Canceller = Annotated[RunCanceller, Depends(run_canceller)]
Caller = Annotated[str, Depends(caller)]
OptionalBody = Annotated[CancelRun | None, Body()]


@router.post(
    "/runs/<run_id>/cancel",
    summary="Cancel a run",
    description=(
        "Records the cancel request at once (`cancel_requested_at`, `cancel_mode`, `cancelled_by`, "
        "`cancel_reason`); the run keeps its status until every process of it has ended, then reads "
        "`cancelled` with `ended_at` at that moment (a queued run, or one whose steps only wait for people, "
        "at once: `status` in the answer). `graceful` (default): the running step's process gets SIGTERM "
        "within a fraction of a second, then SIGKILL after the step's `grace_period` (default 30 s). "
        "`force`: SIGKILL at once. `cleanup`: graceful, then each succeeded step's `cleanup` command runs, "
        "the last finished first, with its own logs (step `cleanup:<step>`); the run reads `cancelled` once "
        "they are over, with each result and `cleanup_status`. A second cancel while one is under way is "
        "409 `CancelUnderWay`, except `mode: force` on a graceful or cleanup cancel, which escalates it "
        "(`escalated: true`). A finished run answers 409 `Conflict`. `reason` (up to 500 characters) is "
        "kept on the run. An empty body means `{}`. A run whose workflow's `permissions.cancel` does not "
        "name the caller answers 403 NotAllowed, and nothing is recorded."
    ),
    tags=["runs"],
    responses={
        202: {
            "description": "Cancel recorded; the run reads cancelled once its last process has ended",
            "content": {content_types.APPLICATION_JSON: {"model": Cancelled}},
        },
        **error_docs(400, 404, 409, 413, 422),
        **not_allowed_docs("cancel"),
    },
)
def cancel_run(
    run_id: RunId, canceller: Canceller, user: Caller, body: OptionalBody = None
) -> Response[Cancelled]:
    """POST /runs/{run_id}/cancel."""
    answer = canceller.cancel(run_id, body or CancelRun(), caller=user)
    return Response(202, content_types.APPLICATION_JSON, answer)
