"""Start a manual run, list run history, read one run."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body, Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.runs.service import RunQuery, RunService, StartRun
from flowdeck.runs.views import RunPage, RunStarted, RunView
from flowdeck.status import RunStatus
from lambdas.deps import RunId, caller, run_service
from lambdas.responses import answer_docs, error_docs, not_allowed_docs

router = APIGatewayRouter()

Service = Annotated[RunService, Depends(run_service)]
Caller = Annotated[str, Depends(caller)]
OptionalBody = Annotated[StartRun | None, Body()]


@router.post(
    "/workflows/<wf>/runs",
    summary="Start a manual run",
    description=(
        "Validates the inputs against the workflow's declared inputs (defaults merged), records the run and "
        "starts it: `GET /runs/{id}` answers from this answer on. Always answers 202 with the run id, also "
        "for a repeat with the same `idempotency_key`: that repeat names the run the key first started, "
        "with its status now, and starts nothing new. A paused workflow answers 409 WorkflowPaused. "
        "An empty body means `{}`. "
        "A workflow at its `runtime_config.concurrency.max_runs` answers `status: queued` (the run starts "
        "when a slot frees, in order) or, with `on_limit: reject`, 409 ConcurrencyLimit. "
        "A workflow whose `permissions.start` does not name the caller answers 403 NotAllowed."
    ),
    tags=["runs"],
    responses={
        202: {
            "description": "Run started (or already started with this idempotency key)",
            "content": {content_types.APPLICATION_JSON: {"model": RunStarted}},
        },
        **error_docs(400, 404, 409, 413, 422),
        **not_allowed_docs("start"),
    },
)
def start_run(wf: str, service: Service, user: Caller, body: OptionalBody = None) -> Response[RunStarted]:
    """POST /workflows/{wf}/runs."""
    started = service.start_run(wf, body or StartRun(), started_by=user)
    answer = RunStarted(run_id=started["run_id"], status=started.get("status", RunStatus.RUNNING.value))
    return Response(202, content_types.APPLICATION_JSON, answer)


@router.get(
    "/runs",
    summary="Run history",
    tags=["runs"],
    responses={**answer_docs(200, "A page of run history", RunPage), **error_docs(400, 422)},
)
def list_runs(service: Service, query: Annotated[RunQuery, Query()]) -> RunPage:
    """Runs newest first, filtered and paged: pass `next_cursor` back as `cursor` for the next page.

    A page reads at most 5 x limit index entries: with filters no index answers alone it may be short, even
    empty, and still have a `next_cursor`; the history ends when `next_cursor` is null (docs/history.md).
    """
    return RunPage.model_validate(service.list_runs(query))


@router.get(
    "/runs/<run_id>",
    summary="Get a run",
    tags=["runs"],
    responses={**answer_docs(200, "The run with its steps", RunView), **error_docs(404, 422)},
)
def get_run(run_id: RunId, service: Service, user: Caller) -> RunView:
    """One run with its steps: status, timings, attempts, outputs, error and cost; `actions` (the run's
    and each step's) name what the caller may do now."""
    return RunView.model_validate(service.get_run(run_id, caller=user))
