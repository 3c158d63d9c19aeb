"""`POST /slack/interactions`: a signed button click becomes an approval decision.

Slack signs each request: `X-Slack-Signature: v0=<hex>` = HMAC-SHA256 of `v0:<timestamp>:<raw body>`
with the app's signing secret, `X-Slack-Request-Timestamp` within 5 minutes (slack_sdk's verifier;
constant-time compare). Anything forged, unsigned or stale is refused (401) before it is even parsed.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qs

from slack_sdk.errors import SlackClientError
from slack_sdk.signature import Clock, SignatureVerifier
from slack_sdk.webhook import WebhookClient

from flowdeck.approvals.directory import Directory, normalise_email
from flowdeck.approvals.slack.blocks import DECISION_ACTIONS, outcome
from flowdeck.approvals.slack.client import SlackApprovals, SlackDeliveryError, SlackNotConfigured
from flowdeck.errors import BadRequest, FlowdeckError, NotAllowed, Unauthorized

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"


class Decide(Protocol):
    """ApprovalDecisions.decide (flowdeck.approvals.decisions)."""

    def __call__(
        self,
        run_id: str,
        step: str,
        approver: str,
        decision: Any,
        channel: Any,
        comment: str | None = None,
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class Click:
    """One Approve or Reject click, as parsed from a block_actions payload."""

    run_id: str
    step: str
    decision: str  # approve | reject
    workflow: str
    user_id: str
    response_url: str | None
    message: dict[str, str] = field(default_factory=dict)  # {channel, ts} of the clicked message


@dataclass(frozen=True)
class InteractionAnswer:
    status: int
    body: dict[str, Any]


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def parse_click(body: bytes) -> Click | None:
    """The Approve/Reject click in a form-encoded `payload=<json>`; None for other interactions."""
    try:
        form = parse_qs(body.decode("utf-8"), strict_parsing=True)
        payload = json.loads(form["payload"][0])
    except (UnicodeDecodeError, ValueError, KeyError):
        raise BadRequest("expected a form-encoded body with a JSON `payload` field") from None
    if not isinstance(payload, dict):
        raise BadRequest("`payload` is not a JSON object")
    if payload.get("type") != "block_actions":
        return None
    actions = payload.get("actions")
    action = next(
        (a for a in actions or [] if isinstance(a, dict) and a.get("action_id") in DECISION_ACTIONS), None
    )
    if action is None:
        return None  # the "Open run" link button, or an action of another app
    try:
        value = json.loads(str(action.get("value") or ""))
    except ValueError:
        raise BadRequest("the button's value is not JSON") from None
    if not isinstance(value, dict):
        raise BadRequest("the button's value is not a JSON object")
    run_id, step, decision = value.get("run_id"), value.get("step"), value.get("decision")
    if not (isinstance(run_id, str) and run_id and isinstance(step, str) and step):
        raise BadRequest("the button's value names no run_id and step")
    if decision != DECISION_ACTIONS[str(action["action_id"])]:
        raise BadRequest("the button's decision does not match its action")
    user = _object(payload.get("user"))
    user_id = str(user.get("id") or "")
    if not user_id:
        raise BadRequest("the payload names no Slack user")
    container = _object(payload.get("container"))
    channel = container.get("channel_id") or _object(payload.get("channel")).get("id")
    ts = container.get("message_ts") or _object(payload.get("message")).get("ts")
    response_url = payload.get("response_url")
    return Click(
        run_id=run_id,
        step=step,
        decision=decision,
        workflow=str(value.get("workflow") or ""),
        user_id=user_id,
        response_url=response_url if isinstance(response_url, str) and response_url else None,
        message={"channel": str(channel), "ts": str(ts)} if channel and ts else {},
    )


class SlackInteractions:
    """Verifies, parses and decides one interaction; updates the request message in place."""

    def __init__(
        self,
        slack: SlackApprovals,
        decide: Decide,
        directory: Callable[[], Directory],
        clock: Clock | None = None,
        respond: Callable[[str, str], None] | None = None,
    ) -> None:
        """`respond(response_url, text)` tells the clicker privately (default: Slack's response_url)."""
        self.slack = slack
        self.decide = decide
        self.directory = directory
        self.clock = clock or Clock()
        self.respond = respond or ephemeral_reply

    def handle(self, body: bytes, timestamp: str | None, signature: str | None) -> InteractionAnswer:
        """200 with the decision (or a no-op); raises Unauthorized, BadRequest, NotAllowed, Conflict."""
        self.verify(body, timestamp, signature)
        click = parse_click(body)
        if click is None:
            return InteractionAnswer(200, {"ok": True, "ignored": True})
        try:
            approver = self.approver(click.user_id)
            view = self.decide(click.run_id, click.step, approver, click.decision, "slack", None)
        except FlowdeckError as error:  # NotAllowed (403), Conflict (409), RunNotFound (404), ...
            self.tell(click, f":warning: {error.message}")
            raise
        self.refresh(view, click)
        state = outcome({**view, "run_id": click.run_id, "step": click.step})
        return InteractionAnswer(
            200,
            {
                "ok": True,
                "run_id": click.run_id,
                "step": click.step,
                "decision": click.decision,
                "by": approver,
                "status": state,
            },
        )

    def verify(self, body: bytes, timestamp: str | None, signature: str | None) -> None:
        secret = self.slack.signing_secret()
        if secret is None:
            raise Unauthorized("Slack is not configured here (no signing secret): the request is refused")
        if not timestamp or not signature:
            raise Unauthorized(f"missing {SIGNATURE_HEADER} or {TIMESTAMP_HEADER}")
        try:
            valid = SignatureVerifier(secret, clock=self.clock).is_valid(body, timestamp, signature)
        except ValueError:  # a timestamp that is not an integer, a body that is not UTF-8
            valid = False
        if not valid:
            raise Unauthorized("the Slack signature is wrong or the request is older than 5 minutes")

    def approver(self, user_id: str) -> str:
        """The approver's e-mail: teams.yaml's `people`, else the Slack profile (users:read.email)."""
        email = self.directory().email_for_slack(user_id) or self.slack.email_of(user_id)
        if not email:
            raise NotAllowed(
                f"Slack user {user_id} has no e-mail Flowdeck knows: add them to teams.yaml `people`"
            )
        return normalise_email(email)

    def refresh(self, view: dict[str, Any], click: Click) -> None:
        """Show the decision on a message the step does not record (one it does, decide updates)."""
        if view.get("slack") or not click.message:
            return
        request = {**view, "run_id": click.run_id, "step": click.step, "workflow": click.workflow}
        request["slack"] = click.message
        try:
            self.slack.update_decided(request)
        except (SlackDeliveryError, SlackNotConfigured) as error:
            logger.warning("could not update the Slack message of %s/%s: %s", click.run_id, click.step, error)

    def tell(self, click: Click, text: str) -> None:
        """An ephemeral note to the one who clicked (Slack shows HTTP errors only as a vague icon)."""
        if not click.response_url:
            return
        try:
            self.respond(click.response_url, text)
        except (SlackClientError, OSError) as error:
            logger.warning("could not tell %s in Slack: %s", click.user_id, error)


def ephemeral_reply(response_url: str, text: str) -> None:
    """Only the clicker sees it; the request message stays as it is."""
    WebhookClient(response_url, timeout=5).send(text=text, response_type="ephemeral", replace_original=False)
