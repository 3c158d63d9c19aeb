"""The inbox: approvals waiting that one approver may decide (one Query of their inbox items)."""

from __future__ import annotations

from typing import Any

from flowdeck.approvals.decisions import approval_view
from flowdeck.approvals.directory import Directory, normalise_email
from flowdeck.approvals.policy import may_decide
from flowdeck.stores.approvals import ApprovalStore


def approver_identity(caller: str) -> str:
    """An approver's e-mail from a caller: the header value locally; on AWS the IAM principal's
    last segment (an SSO/assumed-role session name such as `.../jane@example.com`), lower-cased."""
    return normalise_email(caller.rsplit("/", 1)[-1])


class Inbox:
    def __init__(self, store: ApprovalStore, directory: Directory) -> None:
        self.store = store
        self.directory = directory

    def waiting_for(self, approver: str) -> list[dict[str, Any]]:
        """Waiting approvals the approver may decide and has not approved yet, oldest deadline first.

        Inbox items whose approval ended (decided, cancelled, timed out) are removed on the way.
        """
        who = normalise_email(approver)
        found = []
        for entry in self.store.inbox(who):
            run_id, step = str(entry.get("run_id")), str(entry.get("step"))
            item = self.store.get_step(run_id, step) or {}
            approval = item.get("approval") or {}
            done = any(a.get("by") == who for a in approval.get("approvals", []))
            if item.get("status") != "waiting" or done:
                self.store.remove_inbox({who}, run_id, step)
                continue
            if not may_decide(who, approval.get("approvers") or {}, self.directory):
                continue
            view = approval_view(run_id, step, item)
            view["workflow"] = (entry.get("summary") or {}).get("workflow")
            found.append(view)
        return sorted(found, key=lambda v: str(v.get("deadline") or ""))
