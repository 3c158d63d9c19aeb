"""Decisions on a waiting approval step: approve (min_approvals distinct people) or reject (any one).

Every decision is one conditional write on the step item, checked against `approval_version` and
the token, so two people deciding at once never lose a decision; the loser re-reads and tries again.
Only the write that ends the wait (the last approval needed, or a reject) answers the task token, so
the token is answered once. Nothing changes for someone the policy does not allow (403), and a step
no longer waiting (decided, cancelled, timed out) answers 409.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowdeck.approvals.directory import Directory, normalise_email
from flowdeck.approvals.policy import approvers_of, describe, may_decide
from flowdeck.clock import now_iso
from flowdeck.control.owed_answers import OWED_ANSWER, AnswerSender, OwedAnswer
from flowdeck.control.pause import StepNotFound
from flowdeck.errors import Conflict, NotAllowed, RunNotFound
from flowdeck.stores.approvals import ApprovalStore
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.approvals")

Decision = Literal["approve", "reject"]
Channel = Literal["email", "slack", "inbox", "api"]
APPROVAL_REJECTED = "ApprovalRejected"
APPROVAL_TIMED_OUT = "ApprovalTimedOut"
MAX_COMMENT = 1000
# Conditional writes lost to a concurrent decision before giving up with 409 (each loss means
# someone else's decision landed: the loop ends fast in practice).
MAX_ATTEMPTS = 20
# The emulator's conditional writes are not atomic across threads: decisions taken in one process
# (the local stack, one Lambda container) go one at a time. Across containers DynamoDB's condition decides.
_deciding = threading.Lock()


class ApprovalNotWaiting(Conflict):
    """A decision on an approval that no longer waits: decided, cancelled or timed out."""

    code = "ApprovalNotWaiting"


class ApprovalRequest(BaseModel):
    """Body of POST /runs/{id}/steps/{step}/approve and /reject (optional)."""

    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(default=None, min_length=1, max_length=MAX_COMMENT)


def approval_view(run_id: str, step: str, item: dict[str, Any]) -> dict[str, Any]:
    """What the API and the run view show of an approval step."""
    approval = dict(item.get("approval") or {})
    approvals = list(approval.get("approvals", []))
    policy = approval.get("approvers", {})
    view: dict[str, Any] = {
        "run_id": run_id,
        "step": step,
        "status": item.get("status", "pending"),
        "message": approval.get("message", ""),
        "approvers": policy,
        "who_may_decide": describe(policy) if policy else "",
        "min_approvals": approval.get("min_approvals", 1),
        "approvals": approvals,
        "approved": len(approvals),
        "channels": approval.get("channels", []),
        "deadline": approval.get("deadline"),
        "requested_at": approval.get("requested_at"),
        "link": approval.get("link"),
        "links": approval.get("links", {}),
        "decisions": list(item.get("decisions", [])),
    }
    for key in ("error", "cause", "ended_at"):
        if item.get(key) is not None:
            view[key] = item[key]
    # `delivered`: which channels the notifier reached ({email, email_to, slack}), for "delivered by".
    for key in ("delivered", "delivery_errors", "slack", "approved_by", "rejected_by"):
        if approval.get(key):
            view[key] = approval[key]
    return view


class ApprovalDecisions:
    """Approve or reject a waiting approval step, as one approver, through one channel."""

    def __init__(
        self, runs: RunStore, sfn: Any, directory: Directory | None = None, on_decided: Any = None
    ) -> None:
        """`on_decided(view)` runs after a decision ended the wait (e.g. update the Slack message)."""
        self.runs = runs
        self.store = ApprovalStore(runs)
        self.sfn = sfn
        self._directory = directory
        self.on_decided = on_decided

    @property
    def directory(self) -> Directory:
        if self._directory is None:
            from flowdeck.approvals.directory import load_directory

            self._directory = load_directory()
        return self._directory

    def view(self, run_id: str, step: str) -> dict[str, Any]:
        """The approval view of a step (404 unknown run or step)."""
        run, steps, _ = self.runs.get_run_items(run_id)
        self._check_step(run_id, step, run)
        return approval_view(run_id, step, steps.get(step, {}))

    @staticmethod
    def _check_step(run_id: str, step: str, run: dict[str, Any] | None) -> None:
        if run is None or "plan" not in run:
            raise RunNotFound(f"no run with id {run_id!r}")
        kinds = {s.get("id"): s.get("kind") for s in run["plan"]}
        if step not in kinds:
            raise StepNotFound(f"run {run_id} has no step {step!r}")
        if kinds[step] != "approval":
            raise ApprovalNotWaiting(f"step {step} of run {run_id} is not an approval step")

    def decide(
        self,
        run_id: str,
        step: str,
        approver: str,
        decision: Literal["approve", "reject"],
        channel: Literal["email", "slack", "inbox", "api"],
        comment: str | None = None,
    ) -> dict[str, Any]:
        """Record the decision; the step's approval view after it (403, 404, 409 as the module says)."""
        who = normalise_email(approver)
        if comment is not None and len(comment) > MAX_COMMENT:
            comment = comment[:MAX_COMMENT]
        with _deciding:
            for _ in range(MAX_ATTEMPTS):
                outcome = self._try(run_id, step, who, decision, channel, comment or None)
                if outcome is not None:
                    return outcome
        raise ApprovalNotWaiting(f"step {step} of run {run_id} changed too often meanwhile: try again")

    def _try(
        self, run_id: str, step: str, who: str, decision: Decision, channel: Channel, comment: str | None
    ) -> dict[str, Any] | None:
        """One read and one conditional write; None when a concurrent decision won (read again)."""
        run, steps, _ = self.runs.get_run_items(run_id)
        self._check_step(run_id, step, run)
        run = run or {}
        item = steps.get(step, {})
        approval = item.get("approval")
        status = item.get("status", "pending")
        policy = (approval or {}).get("approvers") or {}
        if approval and not may_decide(who, policy, self.directory):
            raise NotAllowed(
                f"{who} may not decide step {step} of run {run_id} (approvers: {describe(policy)})"
            )
        token = item.get("wait_token")
        if status != "waiting" or not approval or not isinstance(token, str):
            shown = "not requested yet" if status == "pending" else status
            raise ApprovalNotWaiting(f"step {step} of run {run_id} is {shown}: nothing to decide")
        approvals = list(approval.get("approvals", []))
        if decision == "approve" and any(a.get("by") == who for a in approvals):
            # The same person approving twice counts once: the answer is the approval as it stands.
            return approval_view(run_id, step, item)
        at = now_iso()
        record: dict[str, Any] = {"decision": decision, "by": who, "at": at, "channel": channel}
        if comment:
            record["comment"] = comment
        version = int(item.get("approval_version", 0))
        sets: dict[str, Any]
        if decision == "approve":
            approvals.append({k: v for k, v in record.items() if k != "decision"})
            needed = int(approval.get("min_approvals", 1))
            ends = len(approvals) >= needed
            sets = {"approval.approvals": approvals}
            if ends:
                sets |= {
                    "status": "succeeded",
                    "ended_at": at,
                    "approval.approved_by": [a["by"] for a in approvals],
                    "approval.approved_at": at,
                }
        else:
            ends = True
            cause = f"rejected by {who}" + (f": {comment}" if comment else "")
            sets = {
                "status": "failed",
                "ended_at": at,
                "error": APPROVAL_REJECTED,
                "cause": cause,
                "approval.rejected_by": who,
            }
        owed = self._owed(run, token, decision, sets, approvals) if ends else None
        if owed is not None:
            # Recorded with the decision: sent below, or by the run-events reaction if this process
            # dies first (flowdeck.control.owed_answers).
            sets[OWED_ANSWER] = owed.encoded()
        if not self.store.decide(run_id, step, token, version, sets, record, ends):
            return None
        log.info("run %s: step %s %s by %s via %s", run_id, step, decision, who, channel)
        if owed is not None and not AnswerSender(self.runs, self.sfn).answer(run_id, step, owed):
            # The deadline or a cancel ended the wait first: say so, not that the decision moved the run.
            log.info("run %s: step %s stopped waiting before the %s landed", run_id, step, decision)
            raise ApprovalNotWaiting(
                f"step {step} of run {run_id} stopped waiting (deadline passed or run cancelled)"
            )
        after = self.store.get_step(run_id, step) or {}
        if ends:
            self.store.remove_inbox(approvers_of(policy, self.directory) | {who}, run_id, step)
        else:
            self.store.remove_inbox({who}, run_id, step)
        view = approval_view(run_id, step, after)
        if self.on_decided is not None:
            try:
                self.on_decided(view | {"workflow": run.get("workflow")})
            except Exception:
                log.exception("run %s: step %s: decided, the follow-up notice failed", run_id, step)
        return view

    @staticmethod
    def _owed(
        run: dict[str, Any],
        token: str,
        decision: Decision,
        sets: dict[str, Any],
        approvals: list[dict[str, Any]],
    ) -> OwedAnswer:
        """The answer the decision that ends the wait owes its token (approve: on, reject: fail)."""
        if decision == "approve":
            return OwedAnswer(
                token=token,
                outcome="success",
                output={"decision": "approve", "approved_by": [a["by"] for a in approvals]},
                resumes_run=True,
                workflow=str(run.get("workflow", "")),
            )
        return OwedAnswer(
            token=token,
            outcome="failure",
            error=APPROVAL_REJECTED,
            cause=str(sets.get("cause") or "rejected"),
        )
