"""Approvals that stopped waiting without a decision: close their Slack message and inbox entries.

A run-events reaction (lambdas/run_events.py). When a run reaches a finished status, each of its
approval steps that has a request but was not decided (waiting, failed or cancelled: the approval
timed out, the run was cancelled, or the run failed or ended otherwise while it waited) gets its Slack
message rewritten in place without the Approve/Reject buttons ("Timed out at ...", "Cancelled by X:
reason", "Run ended: ...") and its `INBOX#<email>` items deleted. Approved and rejected steps are left as
their decision left them (the decision already updated the message and the inbox).

Stream records arrive at least once: the inbox deletes are idempotent, and a rewritten message is noted
on the step (`approval.closed`), so a redelivered record does not call Slack again. Errors talking to
Slack (an outage, a revoked token, no access to the secret) are logged and skipped rather than raised: a
failed record is retried in order on its shard, holding back the other reactions (starting queued runs)
for up to a day; the message then keeps its buttons, and a click on them answers 409 as before.
"""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.approvals.decisions import APPROVAL_REJECTED, APPROVAL_TIMED_OUT
from flowdeck.approvals.directory import Directory, DirectoryError, load_directory
from flowdeck.approvals.policy import approvers_of
from flowdeck.approvals.slack.client import SlackDeliveryError, SlackNotConfigured
from flowdeck.clock import now_iso
from flowdeck.status import FINISHED_RUN_STATUSES
from flowdeck.stores.approvals import ApprovalStore
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.approvals")

UNDECIDED = {"waiting", "failed", "cancelled"}


def just_finished(old: dict[str, Any] | None, new: dict[str, Any]) -> bool:
    """The change that finished the run (later writes to a finished run, like its duration, are not)."""
    return new.get("status") in FINISHED_RUN_STATUSES and (
        old is None or old.get("status") not in FINISHED_RUN_STATUSES
    )


def ending_of(run: dict[str, Any], item: dict[str, Any]) -> dict[str, Any] | None:
    """Why an approval step stopped waiting undecided; None when a decision ended it (or it still could)."""
    approval = item.get("approval") or {}
    if item.get("status") not in UNDECIDED or not approval:
        return None  # approved, never requested, or reused from an earlier run
    if item.get("error") == APPROVAL_REJECTED or approval.get("rejected_by"):
        return None  # the reject already rewrote the message
    if item.get("error") == APPROVAL_TIMED_OUT:
        return {"state": "timed_out", "at": item.get("ended_at") or approval.get("deadline")}
    if run.get("status") == "cancelled" or item.get("status") == "cancelled":
        by = str(run.get("cancelled_by") or "")
        reason = str(run.get("cancel_reason") or item.get("cause") or "")
        # The cancel's default reason repeats who cancelled: "Cancelled by X: cancelled by X".
        if reason.lower() == f"cancelled by {by}".lower():
            reason = ""
        return {"state": "cancelled", "by": by or None, "reason": reason or None, "at": run.get("ended_at")}
    return {
        "state": "run_ended",
        "run_status": run.get("status"),
        "error": run.get("error"),
        "at": run.get("ended_at"),
    }


class EndedApprovals:
    """Closes the approvals of a run that finished while they waited (see the module docstring)."""

    def __init__(self, runs: RunStore, slack: Any = None, directory: Directory | None = None) -> None:
        """`slack`: a SlackApprovals, or None to leave Slack alone; `directory`: None loads teams.yaml."""
        self.store = ApprovalStore(runs)
        self.slack = slack
        self._directory = directory

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            try:
                self._directory = load_directory()
            except DirectoryError as error:
                # Named users and deciders are still known; group members' items go when the inbox reads them.
                log.warning("approvals: %s; closing inbox entries of named approvers only", error)
                self._directory = Directory()
        return self._directory

    def on_run_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """A run-events reaction: on the change that finished a run, close its undecided approvals."""
        if not just_finished(old, new):
            return
        run_id = str(new.get("run_id") or new.get("pk"))
        # The plan names the approval steps: most runs have none and cost no read here.
        for step in [s.get("id") for s in new.get("plan") or [] if s.get("kind") == "approval"]:
            item = self.store.get_step(run_id, str(step))
            ending = ending_of(new, item or {})
            if item is None or ending is None:
                continue
            self.close(run_id, str(step), new, item, ending)

    def close(
        self, run_id: str, step: str, run: dict[str, Any], item: dict[str, Any], ending: dict[str, Any]
    ) -> None:
        """Remove the step's inbox entries and rewrite its Slack message (once)."""
        approval = item.get("approval") or {}
        people = approvers_of(approval.get("approvers") or {}, self.directory)
        people |= {str(a["by"]) for a in approval.get("approvals") or [] if a.get("by")}
        people |= {str(d["by"]) for d in item.get("decisions") or [] if d.get("by")}
        self.store.remove_inbox(people, run_id, step)
        if self.slack is None or not approval.get("slack") or approval.get("closed"):
            return
        request = approval | {
            "run_id": run_id,
            "step": step,
            "workflow": run.get("workflow"),
            "decisions": list(item.get("decisions") or []),
        }
        try:
            if not self.slack.update_ended(request, ending):
                return
        except SlackNotConfigured:
            log.info("run %s: approval %s ended; Slack is not configured, message left", run_id, step)
            return
        except (SlackDeliveryError, ClientError, BotoCoreError) as error:
            # ClientError/BotoCoreError: reading the `flowdeck/slack` secret failed (access, throttling).
            log.warning(
                "run %s: approval %s ended; its Slack message was not updated: %s", run_id, step, error
            )
            return
        self.store.note_closed(run_id, step, {"state": ending["state"], "at": now_iso()})
        log.info("run %s: approval %s %s; Slack message updated", run_id, step, ending["state"])
