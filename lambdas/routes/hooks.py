"""Signed triggers (`POST /hooks/github`, `POST /hooks/{wf}`) and a workflow's trigger history.

The hooks are the API's only routes without IAM auth (GitHub cannot sign with SigV4): the HMAC of
the raw body is their authentication, so they read the body bytes exactly as sent.
"""

from __future__ import annotations

from typing import Annotated, TypeVar

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Query
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.config import get_settings, per_settings
from flowdeck.stores.deliveries import Deliveries
from flowdeck.triggers.secrets import WebhookSecrets
from flowdeck.triggers.service import (
    DELIVERY_HEADER,
    GITHUB_DELIVERY_HEADER,
    GITHUB_EVENT_HEADER,
    GITHUB_SIGNATURE_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    HookAnswer,
    TriggerService,
)
from flowdeck.triggers.views import GithubDelivery, HookStarted, TriggerHistory
from lambdas.deps import raw_body, run_service
from lambdas.responses import answer_docs, error_docs

router = APIGatewayRouter()
Answer = TypeVar("Answer", GithubDelivery, HookStarted)


@per_settings
def trigger_service() -> TriggerService:
    """The trigger use cases over the run service, the deliveries table and the webhook secrets."""
    return TriggerService(run_service(), Deliveries(get_settings().deliveries_table), WebhookSecrets())


Service = Annotated[TriggerService, Depends(trigger_service)]


def _header(name: str) -> str | None:
    # Powertools' header lookup is case-insensitive, as HTTP's.
    return router.current_event.headers.get(name)


def _answer(model: type[Answer], answer: HookAnswer) -> Response[Answer]:
    return Response(answer.status, content_types.APPLICATION_JSON, model.model_validate(answer.body))


# Declared before /hooks/<wf>; workflow definitions may not be named `github` (definition checks).
@router.post(
    "/hooks/github",
    summary="GitHub push webhook",
    description=(
        "Verifies `X-Hub-Signature-256` (HMAC-SHA256 of the body with the secret `flowdeck/webhooks/github`) "
        "and starts every workflow whose `git` trigger matches the push's repository and branch, with the "
        "inputs `commit`, `ref`, `branch` and `repo` it declares; `started_by` is the pusher. "
        "`ping` and other events answer 200 and start nothing. `X-GitHub-Delivery` is the idempotency key."
    ),
    tags=["triggers"],
    responses={
        **answer_docs(200, "Ping, another event, or a push that started nothing", GithubDelivery),
        **answer_docs(202, "A push that started (or had started) at least one run", GithubDelivery),
        **error_docs(400, 401, 413),
    },
)
def github_hook(service: Service) -> Response[GithubDelivery]:
    """POST /hooks/github."""
    return _answer(
        GithubDelivery,
        service.github(
            _header(GITHUB_EVENT_HEADER),
            raw_body(router.current_event),
            _header(GITHUB_SIGNATURE_HEADER),
            _header(GITHUB_DELIVERY_HEADER),
            _header("Content-Type"),
        ),
    )


@router.post(
    "/hooks/<wf>",
    summary="Signed webhook",
    description=(
        "Starts a run of a workflow with a `webhook` trigger. `X-Flowdeck-Signature: sha256=<hex>` is the "
        "HMAC-SHA256 of the raw body with the trigger's secret (`flowdeck/webhooks/<secret>`); the JSON body "
        "becomes the inputs through the trigger's `inputs` mapping (or is the inputs object itself). An "
        "optional `X-Flowdeck-Delivery` id is the idempotency key: a repeat answers the same `run_id`. "
        "Replay-proof form: `X-Flowdeck-Timestamp: <Unix seconds>` and `X-Flowdeck-Signature: v0=<hex>`, "
        "the HMAC-SHA256 of `v0:<timestamp>:<body>` (Slack's scheme); accepted within 5 minutes of the "
        "timestamp and once (the same signature with another delivery id is 401). A trigger with "
        "`require_timestamp: true` accepts only that form. Start permissions do not apply: the secret "
        "authorizes the delivery."
    ),
    tags=["triggers"],
    responses={
        **answer_docs(202, "Run started (or already started by this delivery)", HookStarted),
        **error_docs(400, 401, 404, 409, 413, 422),
    },
)
def webhook(wf: str, service: Service) -> Response[HookStarted]:
    """POST /hooks/{wf}."""
    sender = router.current_event.request_context.identity.source_ip
    return _answer(
        HookStarted,
        service.webhook(
            wf,
            raw_body(router.current_event),
            _header(SIGNATURE_HEADER),
            _header(DELIVERY_HEADER),
            sender,
            _header(TIMESTAMP_HEADER),
        ),
    )


@router.get(
    "/workflows/<wf>/triggers",
    summary="Triggers and their history",
    tags=["triggers"],
    responses={
        **answer_docs(200, "The triggers and their latest deliveries", TriggerHistory),
        **error_docs(404, 422),
    },
)
def workflow_triggers(
    wf: str, service: Service, limit: Annotated[int, Query(ge=1, le=200)] = 50
) -> TriggerHistory:
    """The workflow's triggers and its recent deliveries: what each started, or why it was refused."""
    return TriggerHistory.model_validate(service.triggers(wf, limit))
