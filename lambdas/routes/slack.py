"""`POST /slack/interactions`: Slack's Approve / Reject buttons (Slack's signature is the auth)."""

from __future__ import annotations

from typing import Annotated

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck.approvals.slack.client import SlackApprovals
from flowdeck.approvals.slack.interactions import SIGNATURE_HEADER, TIMESTAMP_HEADER, SlackInteractions
from flowdeck.approvals.views import SlackAnswer
from flowdeck.approvals.wiring import build_decisions
from flowdeck.config import get_settings, per_settings
from lambdas.deps import raw_body
from lambdas.responses import error_docs

router = APIGatewayRouter()


@per_settings
def slack_interactions() -> SlackInteractions:
    """The interaction use case over the Slack secret and the approval decisions."""
    settings = get_settings()
    decisions = build_decisions(settings)
    return SlackInteractions(SlackApprovals(settings=settings), decisions.decide, lambda: decisions.directory)


Service = Annotated[SlackInteractions, Depends(slack_interactions)]


@router.post(
    "/slack/interactions",
    summary="Slack interactions (approval buttons)",
    description=(
        "Slack's Request URL for interactivity. Verifies `X-Slack-Signature` and `X-Slack-Request-Timestamp` "
        "(HMAC-SHA256 of `v0:<timestamp>:<body>` with the signing secret in `flowdeck/slack`; older than "
        "5 minutes is refused), maps the Slack user to an approver e-mail (teams.yaml `people`, else the "
        "Slack profile) and records the Approve or Reject; the request message is updated in place. "
        "Other interactions (the Open run button) answer 200 and change nothing."
    ),
    tags=["approvals"],
    responses={
        200: {
            "description": "Decision recorded (or nothing to do)",
            "content": {content_types.APPLICATION_JSON: {"model": SlackAnswer}},
        },
        **error_docs(400, 401, 403, 404, 409, 413),
    },
)
def interactions(service: Service) -> Response[SlackAnswer]:
    """POST /slack/interactions."""
    headers = router.current_event.headers  # case-insensitive lookup, as HTTP's
    answer = service.handle(
        raw_body(router.current_event), headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    )
    return Response(answer.status, content_types.APPLICATION_JSON, SlackAnswer.model_validate(answer.body))
