"""The API's answers about approvals: a decision's approval, the inbox, the local e-mail outbox, Slack."""

from __future__ import annotations

from typing import Any

from pydantic import MISSING, Field

from flowdeck.runs.views import View


class ApprovalView(View):
    """An approval step as the approve/reject answers show it (flowdeck.approvals.decisions)."""

    run_id: str
    step: str
    status: str
    message: str
    approvers: dict[str, Any] = Field(description="The policy: people, groups, teams.")
    who_may_decide: str
    min_approvals: int
    approvals: list[dict[str, Any]]
    approved: int
    channels: list[str]
    deadline: str | None
    requested_at: str | None
    link: str | None
    links: dict[str, Any]
    decisions: list[dict[str, Any]]
    # Once the approval ended.
    error: str | MISSING = MISSING
    cause: str | MISSING = MISSING
    ended_at: str | MISSING = MISSING
    # Which channels the notifier reached, and what it could not deliver.
    delivered: dict[str, Any] | MISSING = MISSING
    delivery_errors: dict[str, Any] | list[Any] | MISSING = MISSING
    slack: dict[str, Any] | MISSING = MISSING
    approved_by: list[str] | MISSING = MISSING
    rejected_by: str | list[str] | MISSING = MISSING


class InboxEntry(ApprovalView):
    """A waiting approval the caller may decide, with its run's workflow."""

    workflow: str | None


class Inbox(View):
    """GET /inbox: the caller (as an approver) and what waits for them, oldest deadline first."""

    approver: str
    approvals: list[InboxEntry]


class SentEmails(View):
    """GET /inbox/emails (local stack only): the approval e-mails the notifier sent."""

    emails: list[dict[str, Any]]


class SlackAnswer(View):
    """POST /slack/interactions: the decision a button recorded, or `ignored` for other clicks."""

    ok: bool
    ignored: bool | MISSING = MISSING
    run_id: str | MISSING = MISSING
    step: str | MISSING = MISSING
    decision: str | MISSING = MISSING
    by: str | MISSING = MISSING
    status: str | MISSING = MISSING
