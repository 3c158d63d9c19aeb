"""A run's stored output: filter, search, page and download (SPEC §3)."""

from __future__ import annotations

from typing import Annotated, Any

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.runs.logs import LogQuery, LogService, as_jsonl, as_text, download_name
from flowdeck.runs.views import LogPage
from lambdas.deps import RunId, log_service
from lambdas.responses import error_docs

router = APIGatewayRouter()

Service = Annotated[LogService, Depends(log_service)]
NDJSON = "application/x-ndjson"
TEXT = "text/plain; charset=utf-8"


@router.get(
    "/runs/<run_id>/logs",
    summary="Get a run's logs",
    description=(
        "Lines `{seq, step, t, stream, text}` in order, filtered by `step` and `stream`, searched with `q` "
        "(case-insensitive, across the whole stored log). One answer holds at most 50,000 lines or ~4 MB: "
        "pass `next_since_seq` back as `since_seq` for the rest (`more` is true), or to follow a running "
        "run; `limit` asks for fewer lines (an answer ends with the batch that reaches it). "
        "`format=jsonl` or `format=text` answers a file to download instead (the paging values then "
        "come in the `X-Flowdeck-Next-Since-Seq` and `X-Flowdeck-More` headers)."
    ),
    tags=["runs"],
    responses={
        200: {
            "description": "A page of lines (`format=json`), or the lines as a file to download",
            "content": {
                content_types.APPLICATION_JSON: {"model": LogPage},
                NDJSON: {"schema": {"type": "string"}},
                TEXT: {"schema": {"type": "string"}},
            },
        },
        **error_docs(404, 422),
    },
)
def get_logs(run_id: RunId, service: Service, query: Annotated[LogQuery, Query()]) -> Response[Any]:
    """GET /runs/{id}/logs."""
    page = service.page(run_id, query)
    if query.format == "json":
        return Response(200, content_types.APPLICATION_JSON, LogPage.model_validate(page))
    text = as_jsonl(page["lines"]) if query.format == "jsonl" else as_text(page["lines"])
    headers = {
        "Content-Disposition": f'attachment; filename="{download_name(run_id, query.format)}"',
        "X-Flowdeck-Next-Since-Seq": str(page["next_since_seq"]),
        "X-Flowdeck-More": "true" if page["more"] else "false",
    }
    content_type = NDJSON if query.format == "jsonl" else TEXT
    return Response(200, content_type, text, headers=headers)
