"""Block Kit for approval requests: the interactive message, its decided and ended versions (pure)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any, Final

APPROVE_ACTION: Final = "flowdeck_approve"
REJECT_ACTION: Final = "flowdeck_reject"
OPEN_ACTION: Final = "flowdeck_open"
DECISION_ACTIONS: Final = {APPROVE_ACTION: "approve", REJECT_ACTION: "reject"}
ACTIONS_BLOCK: Final = "flowdeck_approval"
# Block Kit limits: header text 150, section text 3000, button value 2000 characters.
HEADER_LIMIT: Final = 150
TEXT_LIMIT: Final = 3000
TIMED_OUT_ERROR: Final = "ApprovalTimedOut"
DECIDED = {"approved", "rejected", "cancelled", "timed_out", "failed", "succeeded"}


def escape(text: str) -> str:
    """Slack's mrkdwn control characters; the rest of the text shows as written."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _slack_date(value: Any) -> str:
    """An ISO time as Slack's localised date (each reader sees their own time zone)."""
    if not value:
        return "-"
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return escape(str(value))
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{escape(str(value))}>"


def approval_of(request: dict[str, Any]) -> dict[str, Any]:
    """The approval map, whether the request is the step's view or carries it under `approval`."""
    nested = request.get("approval")
    return {**request, **nested} if isinstance(nested, dict) else request


def policy_text(approval: dict[str, Any]) -> str:
    """`2 approvals needed from jane@example.com, sam@example.com or team platform`."""
    approvers = approval.get("approvers") or {}
    who = [str(user) for user in approvers.get("users") or []]
    who += [f"team {group}" for group in approvers.get("groups") or []]
    if approvers.get("any_member"):
        who.append("any team member")
    needed = int(approval.get("min_approvals") or 1)
    noun = "approval" if needed == 1 else "approvals"
    return f"{needed} {noun} needed from {', '.join(who) if who else 'nobody (no approvers listed)'}"


def outcome(approval: dict[str, Any]) -> str:
    """waiting | approved | rejected | cancelled | timed_out, from the view's status or its decisions."""
    status = str(approval.get("status") or "")
    if status == "failed" and approval.get("error") == TIMED_OUT_ERROR:
        return "timed_out"
    if status in DECIDED or status == "waiting":
        # The view carries the step's status: an approval step succeeds when approved.
        return {"succeeded": "approved", "failed": "rejected"}.get(status, status)
    if any(d.get("decision") == "reject" for d in approval.get("decisions") or []):
        return "rejected"
    if len(approval.get("approvals") or []) >= int(approval.get("min_approvals") or 1):
        return "approved"
    return "waiting"


def button_value(run_id: str, step: str, decision: str, workflow: str = "") -> str:
    """What a button carries back to `POST /slack/interactions` (signed by Slack, not by us)."""
    value = {"run_id": run_id, "step": step, "decision": decision, "workflow": workflow}
    return json.dumps(value, separators=(",", ":"))


def _title(approval: dict[str, Any]) -> str:
    return _clip(f"Approval: {approval.get('workflow', '?')} / {approval.get('step', '?')}", HEADER_LIMIT)


def _summary_blocks(approval: dict[str, Any]) -> list[dict[str, Any]]:
    run_id = str(approval.get("run_id", "?"))
    link = approval.get("link")
    run = f"<{link}|{escape(run_id)}>" if link else escape(run_id)
    message = approval.get("message") or "Approval requested."
    return [
        {"type": "header", "text": {"type": "plain_text", "text": _title(approval)}},
        {"type": "section", "text": {"type": "mrkdwn", "text": _clip(escape(str(message)), TEXT_LIMIT)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": f"*Run*\n{run}"},
                {"type": "mrkdwn", "text": f"*Workflow*\n{escape(str(approval.get('workflow', '?')))}"},
                {"type": "mrkdwn", "text": f"*Step*\n{escape(str(approval.get('step', '?')))}"},
                {"type": "mrkdwn", "text": f"*Deadline*\n{_slack_date(approval.get('deadline'))}"},
                {"type": "mrkdwn", "text": f"*Policy*\n{escape(policy_text(approval))}"},
            ],
        },
    ]


def _buttons(approval: dict[str, Any], decisions: bool) -> dict[str, Any] | None:
    run_id, step = str(approval.get("run_id", "")), str(approval.get("step", ""))
    workflow = str(approval.get("workflow", ""))
    elements: list[dict[str, Any]] = []
    if link := approval.get("link"):
        elements.append(
            {
                "type": "button",
                "action_id": OPEN_ACTION,
                "text": {"type": "plain_text", "text": "Open run"},
                "url": str(link),
            }
        )
    if decisions:
        elements += [
            {
                "type": "button",
                "action_id": APPROVE_ACTION,
                "style": "primary",
                "text": {"type": "plain_text", "text": "Approve"},
                "value": button_value(run_id, step, "approve", workflow),
            },
            {
                "type": "button",
                "action_id": REJECT_ACTION,
                "style": "danger",
                "text": {"type": "plain_text", "text": "Reject"},
                "value": button_value(run_id, step, "reject", workflow),
                # One reject fails the run: ask before it counts.
                "confirm": {
                    "title": {"type": "plain_text", "text": "Reject?"},
                    "text": {"type": "plain_text", "text": "Rejecting fails the step and the run."},
                    "confirm": {"type": "plain_text", "text": "Reject"},
                    "deny": {"type": "plain_text", "text": "Cancel"},
                    "style": "danger",
                },
            },
        ]
    return {"type": "actions", "block_id": ACTIONS_BLOCK, "elements": elements} if elements else None


def _decision_line(decision: dict[str, Any]) -> str:
    verb = {"approve": ":white_check_mark: Approved", "reject": ":x: Rejected"}.get(
        str(decision.get("decision")), ":grey_question: Decided"
    )
    line = f"{verb} by {escape(str(decision.get('by', '?')))} via {escape(str(decision.get('channel', '?')))}"
    line += f" {_slack_date(decision.get('at'))}"
    if comment := decision.get("comment"):
        line += f": _{escape(str(comment))}_"
    return line


def _decisions(approval: dict[str, Any]) -> list[dict[str, Any]]:
    """Every decision once: the `decisions` log, else the approvals (each an approve)."""
    if decisions := approval.get("decisions"):
        return list(decisions)
    return [{"decision": "approve", **a} for a in approval.get("approvals") or []]


STATUS_LINES = {
    "waiting": ":hourglass_flowing_sand: *Waiting*",
    "approved": ":white_check_mark: *Approved*",
    "rejected": ":x: *Rejected*",
    "cancelled": ":no_entry_sign: *Cancelled*",
    "timed_out": ":alarm_clock: *Timed out*",
}


def _status_block(text: str, mentions: Sequence[str]) -> dict[str, Any]:
    """The status line; while waiting it mentions the approvers Slack knows, so they are notified."""
    elements = [{"type": "mrkdwn", "text": text}]
    if mentions:
        elements.append({"type": "mrkdwn", "text": "Approvers: " + " ".join(f"<@{m}>" for m in mentions)})
    return {"type": "context", "elements": elements}


def request_blocks(request: dict[str, Any], mentions: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The request as first posted: summary, policy, deadline, Open / Approve / Reject."""
    approval = approval_of(request)
    needed = int(approval.get("min_approvals") or 1)
    blocks = _summary_blocks(approval)
    blocks.append(_status_block(f"{STATUS_LINES['waiting']} · 0 of {needed} approvals", mentions))
    if actions := _buttons(approval, decisions=True):
        blocks.append(actions)
    return blocks


def decided_blocks(request: dict[str, Any], mentions: Sequence[str] = ()) -> list[dict[str, Any]]:
    """The message after a decision: who decided, when and how; buttons only while still waiting."""
    approval = approval_of(request)
    state = outcome(approval)
    needed = int(approval.get("min_approvals") or 1)
    count = len({str(a.get("by")) for a in approval.get("approvals") or []})
    blocks = _summary_blocks(approval)
    lines = [_decision_line(d) for d in _decisions(approval)]
    if lines:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), TEXT_LIMIT)}}
        )
    status = f"{STATUS_LINES.get(state, escape(state))} · {count} of {needed} approvals"
    blocks.append(_status_block(status, mentions if state == "waiting" else ()))
    if actions := _buttons(approval, decisions=state == "waiting"):
        blocks.append(actions)
    return blocks


def fallback_text(request: dict[str, Any]) -> str:
    """The notification text (and what clients without blocks show)."""
    approval = approval_of(request)
    state = outcome(approval)
    head = f"{approval.get('workflow', '?')} / {approval.get('step', '?')}"
    if state == "waiting":
        return _clip(f"Approval needed: {head}: {approval.get('message') or ''}".rstrip(": "), TEXT_LIMIT)
    return f"Approval {state.replace('_', ' ')}: {head}"


ENDED_ICONS = {"timed_out": ":alarm_clock:", "cancelled": ":no_entry_sign:", "run_ended": ":octagonal_sign:"}


def ending_text(ending: dict[str, Any], mrkdwn: bool = False) -> str:
    """`Timed out at <when>`, `Cancelled by X: reason` or `Run ended: failed (Error) at <when>`.

    `ending` (flowdeck.approvals.ended): state timed_out | cancelled | run_ended, at, by, reason,
    run_status, error. `mrkdwn`: Slack's localised dates and escaping, for blocks.
    """
    show: Any = escape if mrkdwn else str
    date: Any = _slack_date if mrkdwn else (lambda value: str(value or "-"))
    state = ending.get("state")
    if state == "timed_out":
        return f"Timed out at {date(ending.get('at'))}"
    if state == "cancelled":
        text = f"Cancelled by {show(str(ending.get('by') or 'someone'))}"
        return text + (f": {show(str(ending['reason']))}" if ending.get("reason") else "")
    text = f"Run ended: {show(str(ending.get('run_status') or 'ended'))}"
    if ending.get("error"):
        text += f" ({show(str(ending['error']))})"
    return text + (f" at {date(ending['at'])}" if ending.get("at") else "")


def ended_blocks(request: dict[str, Any], ending: dict[str, Any]) -> list[dict[str, Any]]:
    """The message once the approval stopped waiting undecided: decisions so far, why, no decision buttons."""
    approval = approval_of(request)
    needed = int(approval.get("min_approvals") or 1)
    count = len({str(a.get("by")) for a in approval.get("approvals") or []})
    blocks = _summary_blocks(approval)
    if lines := [_decision_line(d) for d in _decisions(approval)]:
        blocks.append(
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip("\n".join(lines), TEXT_LIMIT)}}
        )
    icon = ENDED_ICONS.get(str(ending.get("state")), ENDED_ICONS["run_ended"])
    status = (
        f"{icon} {_clip(ending_text(ending, mrkdwn=True), TEXT_LIMIT - 100)} · {count} of {needed} approvals"
    )
    blocks.append(_status_block(status, ()))
    if actions := _buttons(approval, decisions=False):
        blocks.append(actions)
    return blocks


def ended_fallback_text(request: dict[str, Any], ending: dict[str, Any]) -> str:
    approval = approval_of(request)
    head = f"{approval.get('workflow', '?')} / {approval.get('step', '?')}"
    return _clip(f"Approval {head}: {ending_text(ending)}", TEXT_LIMIT)


def posted(request: dict[str, Any]) -> bool:
    """True when the request's Slack message was posted (its `slack` {channel, ts} recorded)."""
    where = approval_of(request).get("slack") or {}
    return isinstance(where, dict) and bool(where.get("channel")) and bool(where.get("ts"))
