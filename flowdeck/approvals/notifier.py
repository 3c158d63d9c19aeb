"""The approvals notifier: record an approval request, then deliver it (e-mail, Slack; the inbox always).

The state machine's approval state sends a `type: approval` message with its task token and waits; no
compute is held. The notifier renders the message (run inputs, earlier steps' outputs), computes the
deadline (entered_at + timeout), records the request on the STEP item (`waiting`, conditional on the
step not being requested yet, so a redelivery changes nothing), the run `waiting`, and one inbox item
per approver. Then it delivers what is not delivered yet: a failed delivery (SES or Slack down) is noted
on the request (`delivery_errors`) and raised for a retry of the message, at most
MAX_DELIVERY_ATTEMPTS receives; after that it is logged and the request stays in the inbox.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.approvals.directory import Directory, normalise_email
from flowdeck.approvals.links import LinkClaims, LinkKey, link_url, sign
from flowdeck.approvals.policy import approvers_of, describe
from flowdeck.clock import now_iso
from flowdeck.expressions import render_template
from flowdeck.messages import ApprovalMessage
from flowdeck.runner.pause import wait_deadline
from flowdeck.status import FINISHED_RUN_STATUSES
from flowdeck.stores.approvals import ApprovalStore
from flowdeck.stores.outbox import Outbox
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.notifier")

# Receives of one message before a failing delivery is given up (recorded, the request kept).
MAX_DELIVERY_ATTEMPTS = 3
RUN_NOT_RUNNING = "RunNotRunning"


def _slack_not_configured() -> tuple[type[Exception], ...]:
    """Slack's "no secret set up" error: a configuration gap, noted once and not retried."""
    try:
        from flowdeck.approvals.slack.client import SlackNotConfigured
    except ImportError:  # pragma: no cover - the Slack module ships with Flowdeck
        return ()
    return (SlackNotConfigured,)


class DeliveryFailed(Exception):
    """A channel failed; the message is retried (the request itself is recorded)."""


def deadline_epoch(deadline: str) -> int:
    return int(datetime.fromisoformat(deadline).astimezone(UTC).timestamp())


def run_page(dashboard_url: str, public_api_url: str, run_id: str, step: str) -> str:
    """The run's page in the dashboard opened at `step` (SPEC §6), or the API's run without a dashboard."""
    if dashboard_url:
        return f"{dashboard_url.rstrip('/')}/#/runs/{quote(run_id)}?step={quote(step)}"
    return f"{public_api_url.rstrip('/')}/runs/{run_id}"


class ApprovalNotifier:
    """Handles approval messages from the approvals queue."""

    def __init__(
        self,
        runs: RunStore,
        sfn: Any,
        ses: Any,
        link_key: LinkKey,
        directory: Directory,
        public_api_url: str,
        sender: str,
        slack: Any = None,
        outbox: Outbox | None = None,
        dashboard_url: str = "",
    ) -> None:
        """`slack`: a SlackApprovals (or None when not configured); `outbox`: keep sent e-mails (local)."""
        self.runs = runs
        self.store = ApprovalStore(runs)
        self.tokens = TaskTokens(sfn)
        self.ses = ses
        self.link_key = link_key
        self.directory = directory
        self.public_api_url = public_api_url.rstrip("/")
        self.dashboard_url = dashboard_url.rstrip("/")
        self.sender = sender
        self.slack = slack
        self.outbox = outbox

    # -- the request ------------------------------------------------------------------------
    def request_for(self, message: ApprovalMessage) -> dict[str, Any]:
        """The request recorded on the step: policy, rendered message, links, deadline."""
        spec = message.approval
        outputs = self.runs.step_outputs(message.run_id)
        context = {
            "inputs": message.inputs,
            "steps": {step: {"outputs": values} for step, values in outputs.items()},
            "run": {"id": message.run_id, "workflow": message.workflow},
        }
        text = render_template(spec.message, context) if spec.message else f"Approve step {message.step}?"
        run_link = run_page(self.dashboard_url, self.public_api_url, message.run_id, message.step)
        links = {"run": run_link}
        if not self.dashboard_url:
            # Without a dashboard the API's run lists outputs; the plan's files are among its artifacts.
            links["artifacts"] = f"{run_link}/artifacts"
        policy: dict[str, Any] = {
            "users": [normalise_email(u) for u in spec.approvers.get("users", [])],
            "groups": list(spec.approvers.get("groups", [])),
            "any_member": bool(spec.approvers.get("any_member", False)),
        }
        request: dict[str, Any] = {
            "approvers": policy,
            "min_approvals": spec.min_approvals,
            "channels": list(spec.channels),
            "message": text,
            "link": run_link,
            "links": links,
            "deadline": wait_deadline(message.entered_at, message.timeout_seconds),
            "requested_at": now_iso(),
            "approvals": [],
            "delivered": {},
            "delivery_errors": [],
        }
        unknown = [g for g in policy["groups"] if g not in self.directory.teams()]
        if unknown:
            request["delivery_errors"].append(
                {
                    "channel": "directory",
                    "at": now_iso(),
                    "error": f"unknown groups {unknown} (not in teams.yaml)",
                }
            )
        if spec.slack_channel:
            request["slack_channel"] = spec.slack_channel
        return request

    def handle(self, message: ApprovalMessage | dict[str, Any], receive_count: int = 1) -> bool:
        """Record and deliver; False when this delivery changes nothing (stale, or the run ended)."""
        if isinstance(message, dict):
            message = ApprovalMessage.model_validate(message)
        run = self.runs.get_run_items(message.run_id)[0] or {}
        if run.get("status") in FINISHED_RUN_STATUSES:
            self._fail_token(message, "the run ended before the approval was requested")
            return False
        request = self.request_for(message)
        recorded = self.store.record_request(
            message.run_id, message.step, message.token, request, message.entered_at
        )
        item = self.store.get_step(message.run_id, message.step) or {}
        if not recorded:
            if item.get("reused_from") and item.get("status") == "succeeded":
                # A retry took this approval over from the run it retries: that decision stands.
                self._answer_reused(message, str(item["reused_from"]))
                return False
            if item.get("status") != "waiting" or item.get("wait_token") != message.token:
                log.info("run %s: approval %s was already decided or ended", message.run_id, message.step)
                return False
            # A redelivery: deliver what is not delivered yet, with the request as first recorded.
            request = dict(item.get("approval") or request)
        if not self.runs.set_run_status(message.run_id, message.workflow, "waiting", ("running", "waiting")):
            cancelled = {
                "decision": "cancel",
                "by": "flowdeck",
                "at": now_iso(),
                "comment": "the run had ended",
            }
            self.runs.record_decision(message.run_id, message.step, message.token, "cancelled", cancelled, {})
            self._fail_token(message, "the run is no longer running")
            return False
        approvers = approvers_of(request["approvers"], self.directory)
        summary = {
            "workflow": message.workflow,
            "message": request["message"],
            "deadline": request["deadline"],
            "link": request["link"],
        }
        # Again on a redelivery (puts are idempotent): a first receive may have stopped before this.
        self.store.add_inbox(approvers, message.run_id, message.step, summary)
        if recorded:
            log.info(
                "run %s: approval %s requested from %s until %s",
                message.run_id,
                message.step,
                describe(request["approvers"]),
                request["deadline"],
            )
        self._deliver(message, request, approvers, receive_count)
        return recorded

    # -- delivery ---------------------------------------------------------------------------
    def _deliver(
        self, message: ApprovalMessage, request: dict[str, Any], approvers: set[str], receive_count: int
    ) -> None:
        delivered = dict(request.get("delivered") or {})
        errors = list(request.get("delivery_errors") or [])
        failed: list[str] = []
        channels = request.get("channels", [])
        if "email" in channels and not delivered.get("email"):
            sent = set(delivered.get("email_to") or [])
            for approver in sorted(approvers - sent):
                try:
                    self._email(message, request, approver)
                    sent.add(approver)
                except (ClientError, BotoCoreError) as exc:
                    errors.append(
                        {"channel": "email", "to": approver, "at": now_iso(), "error": str(exc)[:500]}
                    )
                    failed.append(f"email to {approver}")
            delivered["email_to"] = sorted(sent)
            delivered["email"] = sent >= approvers
        fields: dict[str, Any] = {}
        if "slack" in channels and not delivered.get("slack"):
            if self.slack is None:
                errors.append({"channel": "slack", "at": now_iso(), "error": "Slack is not configured"})
                delivered["slack"] = True  # nothing to retry: configuration, not an outage
            else:
                try:
                    posted = self.slack.post_request(self._slack_request(message, request))
                    fields["slack"] = {"channel": posted["channel"], "ts": posted["ts"]}
                    delivered["slack"] = True
                except _slack_not_configured() as exc:
                    errors.append({"channel": "slack", "at": now_iso(), "error": str(exc)[:500]})
                    delivered["slack"] = True  # nothing to retry until someone sets the secret
                except Exception as exc:
                    errors.append({"channel": "slack", "at": now_iso(), "error": str(exc)[:500]})
                    failed.append("slack")
        giving_up = bool(failed) and receive_count >= MAX_DELIVERY_ATTEMPTS
        if giving_up:
            # The record says the delivery failed for good, not only that its last try did.
            final = {"at": now_iso(), "error": f"gave up after {receive_count} attempts", "final": True}
            errors += [
                (
                    {"channel": "slack"}
                    if f == "slack"
                    else {"channel": "email", "to": f.removeprefix("email to ")}
                )
                | final
                for f in failed
            ]
        fields |= {"delivered": delivered, "delivery_errors": errors[-20:]}
        self.store.note_delivery(message.run_id, message.step, message.token, fields)
        if failed:
            if not giving_up:
                raise DeliveryFailed(
                    f"run {message.run_id} approval {message.step}: {', '.join(failed)} failed"
                )
            log.error(
                "run %s: approval %s: giving up on %s after %d attempts (the request stays in the inbox)",
                message.run_id,
                message.step,
                ", ".join(failed),
                receive_count,
            )

    def _slack_request(self, message: ApprovalMessage, request: dict[str, Any]) -> dict[str, Any]:
        return request | {
            "run_id": message.run_id,
            "workflow": message.workflow,
            "step": message.step,
            "approvers_resolved": sorted(approvers_of(request["approvers"], self.directory)),
        }

    def email_links(self, run_id: str, step: str, approver: str, deadline: str) -> dict[str, str]:
        """The approver's signed approve and reject links."""
        key = self.link_key.get()
        exp = deadline_epoch(deadline)
        return {
            decision: link_url(
                self.public_api_url, sign(LinkClaims(run_id, step, approver, decision, exp), key)
            )  # type: ignore[arg-type]
            for decision in ("approve", "reject")
        }

    def _email(self, message: ApprovalMessage, request: dict[str, Any], approver: str) -> None:
        links = self.email_links(message.run_id, message.step, approver, request["deadline"])
        subject = f"[Flowdeck] Approval needed: {message.workflow} / {message.step}"
        body = "\n".join(
            [
                request["message"],
                "",
                f"Run: {request['link']}",
                *(f"{name}: {url}" for name, url in request.get("links", {}).items() if name != "run"),
                f"Needs {request['min_approvals']} approval(s) from: {describe(request['approvers'])}",
                f"Deadline: {request['deadline']}",
                "",
                f"Approve: {links['approve']}",
                f"Reject:  {links['reject']}",
                "",
                "Each link opens a confirmation page; it works once and expires at the deadline.",
            ]
        )
        self.ses.send_email(
            Source=self.sender,
            Destination={"ToAddresses": [approver]},
            Message={"Subject": {"Data": subject}, "Body": {"Text": {"Data": body}}},
        )
        log.info(
            "run %s: approval %s e-mailed to %s: approve %s reject %s",
            message.run_id,
            message.step,
            approver,
            links["approve"],
            links["reject"],
        )
        if self.outbox is not None:
            self.outbox.keep(
                {
                    "to": approver,
                    "from": self.sender,
                    "subject": subject,
                    "body": body,
                    "run_id": message.run_id,
                    "step": message.step,
                    "links": links,
                    "sent_at": now_iso(),
                }
            )

    def _answer_reused(self, message: ApprovalMessage, origin: str) -> None:
        log.info("run %s: approval %s reused from run %s", message.run_id, message.step, origin)
        self.tokens.succeed(message.token, {"decision": "reused", "reused_from": origin})

    def _fail_token(self, message: ApprovalMessage, cause: str) -> None:
        self.tokens.fail(message.token, RUN_NOT_RUNNING, cause)
