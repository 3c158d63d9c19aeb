"""Approvals: approve/reject by API, the caller's inbox, and the signed e-mail links' pages."""

from __future__ import annotations

import html
import logging
from typing import Annotated, Any
from urllib.parse import parse_qs

from aws_lambda_powertools.event_handler import Depends, Response, content_types
from aws_lambda_powertools.event_handler.openapi.params import Body
from aws_lambda_powertools.event_handler.openapi.types import OpenAPIResponse
from aws_lambda_powertools.event_handler.router import APIGatewayRouter

from flowdeck import aws
from flowdeck.approvals.decisions import ApprovalDecisions, ApprovalRequest
from flowdeck.approvals.inbox import Inbox, approver_identity
from flowdeck.approvals.links import LinkClaims, LinkKey, verify
from flowdeck.approvals.views import ApprovalView, SentEmails
from flowdeck.approvals.views import Inbox as InboxAnswer
from flowdeck.approvals.wiring import build_decisions
from flowdeck.config import get_settings, per_settings
from flowdeck.errors import Conflict, FlowdeckError
from flowdeck.stores.outbox import Outbox
from lambdas.deps import RunId, caller
from lambdas.responses import answer_docs, error_docs

router = APIGatewayRouter()


class NotFound(FlowdeckError):
    code = "NotFound"
    status = 404


log = logging.getLogger("flowdeck.approvals")
HTML = "text/html; charset=utf-8"


@per_settings
def approval_decisions() -> ApprovalDecisions:
    """Decisions over the configured table, Step Functions, directory and Slack."""
    return build_decisions()


@per_settings
def link_key() -> LinkKey:
    """The e-mail links' signing key (Secrets Manager)."""
    settings = get_settings()
    return LinkKey(settings.approval_link_secret_name, aws.client("secretsmanager", settings))


Decisions = Annotated[ApprovalDecisions, Depends(approval_decisions)]
Caller = Annotated[str, Depends(caller)]
OptionalBody = Annotated[ApprovalRequest | None, Body()]

_DECIDE_DESCRIPTION = (
    "For an approval step that waits (status `waiting`): records the caller's decision (who, when, "
    "channel `api`, comment). Approve counts once per person; the step succeeds at `min_approvals` "
    "distinct approvers and the run goes on. Reject fails the step and the run with the comment. "
    "403 `NotAllowed` for someone the policy does not name; 404 `RunNotFound`/`StepNotFound`; "
    "409 `ApprovalNotWaiting` once decided, cancelled or timed out. Answers 202 with the approval."
)
_DECIDE_ANSWERS: dict[int, OpenAPIResponse] = {
    **answer_docs(202, "Decision recorded: the approval as it stands now", ApprovalView),
    **error_docs(400, 403, 404, 409, 413, 422),
}


@router.post(
    "/runs/<run_id>/steps/<step>/approve",
    summary="Approve a waiting approval step",
    description=_DECIDE_DESCRIPTION,
    tags=["approvals"],
    responses=_DECIDE_ANSWERS,
)
def approve_step(
    run_id: RunId, step: str, decisions: Decisions, user: Caller, body: OptionalBody = None
) -> Response[ApprovalView]:
    """POST /runs/{run_id}/steps/{step}/approve."""
    comment = body.comment if body else None
    answer = decisions.decide(run_id, step, approver_identity(user), "approve", "api", comment)
    return Response(202, content_types.APPLICATION_JSON, ApprovalView.model_validate(answer))


@router.post(
    "/runs/<run_id>/steps/<step>/reject",
    summary="Reject a waiting approval step",
    description=_DECIDE_DESCRIPTION,
    tags=["approvals"],
    responses=_DECIDE_ANSWERS,
)
def reject_step(
    run_id: RunId, step: str, decisions: Decisions, user: Caller, body: OptionalBody = None
) -> Response[ApprovalView]:
    """POST /runs/{run_id}/steps/{step}/reject."""
    comment = body.comment if body else None
    answer = decisions.decide(run_id, step, approver_identity(user), "reject", "api", comment)
    return Response(202, content_types.APPLICATION_JSON, ApprovalView.model_validate(answer))


@router.get(
    "/inbox",
    summary="Approvals waiting for me",
    description="The waiting approval steps the caller may decide (and has not approved yet).",
    tags=["approvals"],
    responses={**answer_docs(200, "What waits for the caller", InboxAnswer), **error_docs(400)},
)
def inbox(decisions: Decisions, user: Caller) -> InboxAnswer:
    """GET /inbox."""
    who = approver_identity(user)
    waiting = Inbox(decisions.store, decisions.directory).waiting_for(who)
    return InboxAnswer.model_validate({"approver": who, "approvals": waiting})


# -- e-mail links ------------------------------------------------------------------------------
def _page(status: int, title: str, body: str) -> Response[str]:
    text = (
        "<!doctype html><html><head><meta charset='utf-8'><meta name='robots' content='noindex'>"
        f"<title>{html.escape(title)}</title></head><body style='font-family:sans-serif;max-width:40em;"
        f"margin:2em auto'><h1>{html.escape(title)}</h1>{body}</body></html>"
    )
    return Response(
        status, HTML, text, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
    )


def _error_page(error: FlowdeckError) -> Response[str]:
    return _page(error.status, "This link cannot be used", f"<p>{html.escape(error.message)}</p>")


def _claims(token: str) -> LinkClaims:
    return verify(token, link_key().get())


def _used(view: dict[str, Any], approver: str) -> bool:
    return any(d.get("by") == approver for d in view.get("decisions", []))


LINK_PAGE_DOCS: dict[int, OpenAPIResponse] = {
    200: {"description": "An HTML page", "content": {HTML: {"schema": {"type": "string"}}}},
    # Refusals are pages too (the link is opened in a browser), with the status of SPEC §3.
    401: {"description": "The link's signature or expiry does not hold", "content": {HTML: {}}},
    409: {"description": "The link was used, or the approval is no longer waiting", "content": {HTML: {}}},
    410: {"description": "The link has expired", "content": {HTML: {}}},
    403: {"description": "The link's approver may no longer decide", "content": {HTML: {}}},
    404: {"description": "The run or step is gone", "content": {HTML: {}}},
}


@router.get(
    "/approvals/<token>",
    summary="An e-mailed approval link's confirmation page",
    description=(
        "The signed link of an approval e-mail (one approver, one decision, until the deadline). GET only "
        "shows what would be decided and a form, so a mail scanner's visit decides nothing."
    ),
    tags=["approvals"],
    responses=LINK_PAGE_DOCS,
)
def link_page(token: str, decisions: Decisions) -> Response[str]:
    """GET /approvals/{token}: a confirmation page (a link scanner's GET decides nothing)."""
    try:
        claims = _claims(token)
        view = decisions.view(claims.run, claims.step)
        if _used(view, claims.approver):
            raise Conflict("this link was already used: your decision is recorded")
        if view["status"] != "waiting":
            raise Conflict(f"this approval is {view['status']}: nothing to decide any more")
    except FlowdeckError as error:
        return _error_page(error)
    verb = "Approve" if claims.decision == "approve" else "Reject"
    body = (
        f"<p>{html.escape(str(view.get('message', '')))}</p>"
        f"<p>Run <a href='{html.escape(str(view.get('link', '')))}'>{html.escape(claims.run)}</a>, "
        f"step <b>{html.escape(claims.step)}</b>; you are <b>{html.escape(claims.approver)}</b>. "
        f"{view['approved']} of {view['min_approvals']} approvals so far; deadline "
        f"{html.escape(str(view.get('deadline')))}.</p>"
        "<form method='post'><label>Comment (optional)<br><textarea name='comment' rows='3' cols='50'>"
        f"</textarea></label><br><button type='submit'>{verb}</button></form>"
    )
    return _page(200, f"{verb} {claims.step} of run {claims.run}?", body)


@router.post(
    "/approvals/<token>",
    summary="Decide through an e-mailed approval link",
    description=(
        "The confirmation page's form (`application/x-www-form-urlencoded`, optional `comment`): records "
        "the link's decision as its approver (channel email). Works once; answers an HTML page."
    ),
    tags=["approvals"],
    responses=LINK_PAGE_DOCS,
)
def link_decide(token: str, decisions: Decisions) -> Response[str]:
    """POST /approvals/{token}: decide as the link's approver (channel email); works once."""
    try:
        claims = _claims(token)
        raw = router.current_event.decoded_body or ""
        comment = (parse_qs(raw).get("comment") or [""])[0].strip() or None
        if _used(decisions.view(claims.run, claims.step), claims.approver):
            raise Conflict("this link was already used: your decision is recorded")
        view = decisions.decide(claims.run, claims.step, claims.approver, claims.decision, "email", comment)
    except FlowdeckError as error:
        return _error_page(error)
    done = "approved" if claims.decision == "approve" else "rejected"
    body = (
        f"<p>Recorded: {html.escape(claims.approver)} {done} step {html.escape(claims.step)} of run "
        f"<a href='{html.escape(str(view.get('link', '')))}'>{html.escape(claims.run)}</a>.</p>"
        f"<p>{view['approved']} of {view['min_approvals']} approvals; "
        f"the step is {html.escape(view['status'])}.</p>"
    )
    return _page(200, "Decision recorded", body)


@router.get(
    "/inbox/emails",
    summary="E-mails sent for approvals (local stack only)",
    description=(
        "Locally, every approval e-mail the notifier sent (to the caller, or to everyone with `all=true`), "
        "with its signed links: `flowdeck inbox --emails`. 404 on AWS (links live only in mailboxes)."
    ),
    tags=["approvals"],
    responses={**answer_docs(200, "The approval e-mails sent", SentEmails), **error_docs(404)},
)
def sent_emails(decisions: Decisions, user: Caller) -> SentEmails:
    """GET /inbox/emails."""
    settings = get_settings()
    if not settings.aws_endpoint_url:
        raise NotFound("the e-mail outbox exists on the local stack only")
    params = router.current_event.query_string_parameters or {}
    everyone = params.get("all") in ("1", "true", "yes")
    run_id = params.get("run_id") or None
    outbox = Outbox(decisions.runs.client, settings.runs_table)
    emails = outbox.emails(run_id=run_id, to=None if everyone else approver_identity(user))
    return SentEmails(emails=emails)
