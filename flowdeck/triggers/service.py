"""Signed triggers: `POST /hooks/{wf}` (our webhook) and `POST /hooks/github` (push), and their history.

Every delivery to a known workflow is recorded in the trigger history with what it started or why it
was refused (a delivery to an unknown workflow is answered 404 and not recorded: its name is the
caller's choice, and the history is kept per workflow the catalog knows).

Replays: the delivery id (`X-Flowdeck-Delivery`, GitHub's `X-GitHub-Delivery`) is the run's
idempotency key, so a sender's retry of one delivery starts one run and answers the first run's id
(recorded as `duplicate`). That stops honest redeliveries. Against a malicious replay a sender signs
a timestamp with the body (`X-Flowdeck-Timestamp`, `X-Flowdeck-Signature: v0=<hex>` over
`v0:<timestamp>:<body>`, as Slack does): such a delivery is accepted within 5 minutes of its timestamp
and once (its signature is claimed with its delivery id; the same signature with another or no
delivery id is refused, 401), so a captured one starts nothing. A webhook trigger with
`require_timestamp: true` accepts only those. A body-only signature (`sha256=<hex>`, SPEC §1) stays
valid for as long as the secret is: whoever captured one can resend it with another delivery id.
GitHub's pushes are signed as GitHub defines it (body only); their delivery id is the guard.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qs

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.control.workflow_state import WorkflowPaused
from flowdeck.definition.inputs import resolve_inputs
from flowdeck.definition.models import GitTrigger, WebhookTrigger, WorkflowDefinition
from flowdeck.errors import BadRequest, FlowdeckError, InvalidInputs, Unauthorized, WorkflowNotFound
from flowdeck.runs.service import RunService, StartRun, idempotent_run_id
from flowdeck.status import Trigger
from flowdeck.stores.deliveries import Deliveries
from flowdeck.triggers import github, mapping, signatures
from flowdeck.triggers.github import Push
from flowdeck.triggers.run_ids import delivery_run_id
from flowdeck.triggers.secrets import WebhookSecrets, secret_id

log = logging.getLogger(__name__)

SIGNATURE_HEADER: Final = "X-Flowdeck-Signature"
TIMESTAMP_HEADER: Final = "X-Flowdeck-Timestamp"
TIMESTAMPED_FORM: Final = (
    f"{SIGNATURE_HEADER}: v0=<hex HMAC-SHA256 of v0:<timestamp>:<body>> with {TIMESTAMP_HEADER}"
)
DELIVERY_HEADER: Final = "X-Flowdeck-Delivery"
GITHUB_SIGNATURE_HEADER: Final = "X-Hub-Signature-256"
GITHUB_DELIVERY_HEADER: Final = "X-GitHub-Delivery"
GITHUB_EVENT_HEADER: Final = "X-GitHub-Event"
# The one secret GitHub signs pushes with (Secrets Manager: flowdeck/webhooks/github); `git` triggers
# name no secret of their own because one GitHub webhook (per repository or organisation) feeds them all.
GITHUB_SECRET: Final = "github"  # noqa: S105 - the secret's name, not its value
# Delivery ids become idempotency keys (at most 128 characters with the trigger prefix).
_DELIVERY_ID: Final = re.compile(r"^[A-Za-z0-9._:-]{1,100}$")


@dataclass
class HookAnswer:
    status: int
    body: dict[str, Any] = field(default_factory=dict)


class TriggerService:
    """Verifies and routes signed deliveries to runs, recording each one."""

    def __init__(
        self,
        runs: RunService,
        deliveries: Deliveries,
        secrets: WebhookSecrets,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.runs = runs
        self.deliveries = deliveries
        self.secrets = secrets
        self.clock = clock

    # -- history ----------------------------------------------------------------------------
    def _record(self, workflow: str, trigger: str, delivery: str, outcome: str, **details: Any) -> None:
        # The history explains an answer; failing to write it must not change the answer (or lose a run).
        try:
            self.deliveries.record(workflow, trigger, delivery, outcome, **details)
        except Exception:
            log.exception("could not record delivery %s of %s", delivery, workflow)

    def _run_id(self, workflow: str, trigger: str, delivery: str) -> str:
        """The run a delivery id names: time first (its first sighting), the same at every redelivery."""
        try:
            seen = self.deliveries.first_seen(workflow, trigger, delivery)
        except (BotoCoreError, ClientError):
            # The history must not block a start: the delivery id alone still names one run.
            log.exception("could not read when delivery %s of %s was first seen", delivery, workflow)
            return idempotent_run_id(workflow, f"{trigger}:{delivery}")
        return delivery_run_id(seen, trigger, f"{workflow}\0{trigger}\0{delivery}")

    def _first(self, workflow: str, trigger: str, delivery: str) -> bool:
        """Whether this is the delivery's first arrival; only labels the history, so never fails a start."""
        try:
            return self.deliveries.claim(workflow, trigger, delivery)
        except Exception:
            log.exception("could not claim delivery %s of %s", delivery, workflow)
            return True

    def _refuse(self, workflow: str, trigger: str, delivery: str, error: FlowdeckError, source: str) -> None:
        self._record(
            workflow,
            trigger,
            delivery,
            "refused",
            reason=error.message,
            status_code=error.status,
            source=source,
        )

    def triggers(self, workflow: str, limit: int = 50) -> dict[str, Any]:
        """The workflow's triggers (with the endpoint each listens on) and its recent deliveries."""
        definition = self.runs.catalog.get(workflow)
        triggers = []
        for trigger in definition.triggers:
            view = trigger.model_dump(mode="json", exclude_none=True, by_alias=True)
            if trigger.webhook:
                view["endpoint"] = f"/hooks/{workflow}"
            elif trigger.git:
                view["endpoint"] = "/hooks/github"
            triggers.append(view)
        answer: dict[str, Any] = {
            "workflow": workflow,
            "triggers": triggers,
            "deliveries": self.deliveries.recent(workflow, limit),
        }
        answer.update(_schedule_view(definition))
        return answer

    # -- POST /hooks/{wf} -------------------------------------------------------------------
    def webhook(
        self,
        workflow: str,
        body: bytes,
        signature: str | None,
        delivery_id: str | None,
        sender: str | None = None,
        timestamp: str | None = None,
    ) -> HookAnswer:
        """Start `workflow` from a signed delivery: 202 {run_id, duplicate}; raises 401/404/400/422.

        `timestamp` is X-Flowdeck-Timestamp (for a `v0=` signature). `sender` (the caller's address) is
        only recorded, for whoever wonders who sent a refused delivery.
        """
        definition = self.runs.catalog.get(workflow)
        delivery = delivery_id or f"auto-{uuid.uuid4()}"
        source = f"webhook from {sender}" if sender else "webhook"
        try:
            hook = self._verified_hook(definition, body, signature, timestamp)
            if delivery_id is not None and not _DELIVERY_ID.match(delivery_id):
                raise BadRequest(f"{DELIVERY_HEADER} must be 1-100 letters, digits or . _ : -")
            if signatures.is_timestamped(signature):
                self._accept_once(workflow, str(signature), delivery)
            inputs = _webhook_inputs(hook.inputs, body)
            request = StartRun(
                inputs=inputs, idempotency_key=f"webhook:{delivery_id}" if delivery_id else None
            )
            resolve_inputs(definition, request.inputs)
        except FlowdeckError as error:
            self._refuse(workflow, "webhook", delivery[:100], error, source)
            raise
        # Start first, then claim: the execution name makes a repeated start a no-op, and a delivery
        # whose start failed (5xx, the sender retries) has no claim yet, so its retry counts as first.
        try:
            started = self.runs.start_run(
                workflow,
                request,
                started_by=f"webhook:{hook.secret}",
                trigger=Trigger.WEBHOOK,
                run_id=self._run_id(workflow, "webhook", delivery_id) if delivery_id else None,
            )
        except WorkflowPaused as error:
            self._refuse(workflow, "webhook", delivery[:100], error, source)
            raise
        first = self._first(workflow, "webhook", delivery_id) if delivery_id else True
        outcome = "started" if first and started["created"] else "duplicate"
        self._record(
            workflow, "webhook", delivery, outcome, run_id=started["run_id"], status_code=202, source=source
        )
        return HookAnswer(202, {"run_id": started["run_id"], "duplicate": outcome == "duplicate"})

    def _verified_hook(
        self, definition: WorkflowDefinition, body: bytes, signature: str | None, timestamp: str | None
    ) -> WebhookTrigger:
        """The webhook trigger whose secret signed `body`; raises 404 without one, 401 when none did,
        when the timestamp is missing or stale, or when the trigger requires a timestamp and got none."""
        hooks = [t.webhook for t in definition.triggers if t.webhook is not None]
        if not hooks:
            raise WorkflowNotFound(f"workflow {definition.name!r} has no webhook trigger")
        if not signature:
            raise Unauthorized(
                f"missing {SIGNATURE_HEADER} header "
                f"({TIMESTAMPED_FORM}, or sha256=<hex HMAC-SHA256 of the body>)"
            )
        timestamped = signatures.is_timestamped(signature)
        if timestamped:
            self._check_timestamp(timestamp)
        missing, untimed = [], []
        for hook in hooks:
            secret = self.secrets.get(hook.secret)
            if secret is None:
                missing.append(secret_id(hook.secret))
            elif timestamped and signatures.verify_timestamped(
                secret, body, str(timestamp), signature, now=self.clock
            ):
                return hook
            elif not timestamped and signatures.verify(secret, body, signature):
                if not hook.require_timestamp:
                    return hook
                untimed.append(hook)
        if untimed:
            raise Unauthorized(f"this webhook accepts only timestamped signatures: send {TIMESTAMPED_FORM}")
        if len(missing) == len(hooks):
            raise Unauthorized(f"secret not found: {', '.join(missing)}")
        what = f"the timestamp and body ({TIMESTAMPED_FORM})" if timestamped else "the body"
        raise Unauthorized(f"bad signature: {SIGNATURE_HEADER} does not match {what}")

    def _check_timestamp(self, timestamp: str | None) -> None:
        """401 unless X-Flowdeck-Timestamp is Unix seconds within the window of the server's clock."""
        if not timestamp:
            raise Unauthorized(
                f"missing {TIMESTAMP_HEADER} header (Unix time in seconds) for a v0= signature"
            )
        seconds = signatures.timestamp_seconds(timestamp)
        if seconds is None:
            raise Unauthorized(f"{TIMESTAMP_HEADER} must be the Unix time in seconds")
        age = signatures.timestamp_age(seconds, self.clock)
        if age > signatures.WINDOW_SECONDS:
            raise Unauthorized(
                f"stale delivery: {TIMESTAMP_HEADER} is {int(age)} s away from the server's clock "
                f"(at most {signatures.WINDOW_SECONDS} s): sign each delivery when you send it"
            )

    def _accept_once(self, workflow: str, signature: str, delivery: str) -> None:
        """Claim a timestamped signature for this delivery id; the same one under another id is a replay.

        Kept for twice the window, so it outlives every moment its timestamp is accepted.
        """
        expires = int(self.clock()) + 2 * signatures.WINDOW_SECONDS
        if not self.deliveries.claim_signature(workflow, signature.strip().lower(), delivery, expires):
            raise Unauthorized(
                "replayed delivery: this signature was already received with another delivery id "
                f"(each delivery is signed once; a retry keeps its {DELIVERY_HEADER})"
            )

    # -- POST /hooks/github -----------------------------------------------------------------
    def github(
        self,
        event: str | None,
        body: bytes,
        signature: str | None,
        delivery_id: str | None,
        content_type: str | None = None,
    ) -> HookAnswer:
        """Start the workflows whose `git` trigger matches a push; 200 for ping and other events."""
        delivery = delivery_id if delivery_id and _DELIVERY_ID.match(delivery_id) else f"auto-{uuid.uuid4()}"
        payload = _github_payload(body, content_type)
        repo = github.claimed_repo(payload)
        watchers = self._git_watchers(repo) if repo else {}
        source = f"{repo} ({event or 'no event'})" if repo else f"github ({event or 'no event'})"

        secret = self.secrets.get(GITHUB_SECRET)
        if secret is None or not signatures.verify(secret, body, signature):
            if secret is None:
                error = Unauthorized(f"secret not found: {secret_id(GITHUB_SECRET)}")
            elif not signature:
                error = Unauthorized(f"missing {GITHUB_SIGNATURE_HEADER} header")
            else:
                error = Unauthorized(f"bad signature: {GITHUB_SIGNATURE_HEADER} does not match the body")
            # Filed under the workflows the (unverified) payload would concern: a wrong secret is the
            # usual reason a git trigger "does not fire", and this is where its owner looks.
            for workflow in watchers:
                self._refuse(workflow, "git", delivery, error, source)
            raise error
        if payload is None:
            raise BadRequest("the body is not a JSON GitHub event")

        if event != "push":
            reason = "ping: GitHub reached Flowdeck" if event == "ping" else f"event {event!r} is not a push"
            for workflow in watchers:
                self._record(
                    workflow, "git", delivery, "ignored", reason=reason, status_code=200, source=source
                )
            return HookAnswer(200, {"delivery_id": delivery, "event": event, "runs": []})

        try:
            push = github.parse_push(payload)
        except ValueError as exc:
            not_a_push = BadRequest(str(exc))
            for workflow in watchers:
                self._refuse(workflow, "git", delivery, not_a_push, source)
            raise not_a_push from None
        source = f"{push.pusher} -> {push.repo}@{push.ref}"
        results = [
            self._push_to(workflow, triggers, push, delivery, source)
            for workflow, triggers in watchers.items()
        ]
        started = any(r["outcome"] in ("started", "duplicate") for r in results)
        return HookAnswer(202 if started else 200, {"delivery_id": delivery, "event": event, "runs": results})

    def _git_watchers(self, repo: str) -> dict[str, list[GitTrigger]]:
        """Workflow name -> its git triggers on `repo`."""
        watchers: dict[str, list[GitTrigger]] = {}
        for name in self.runs.catalog.names():
            triggers = [
                t.git for t in self.runs.catalog.get(name).triggers if t.git and github.same_repo(t.git, repo)
            ]
            if triggers:
                watchers[name] = triggers
        return watchers

    def _push_to(
        self, workflow: str, triggers: list[GitTrigger], push: Push, delivery: str, source: str
    ) -> dict[str, Any]:
        """Start (or explain not starting) one workflow for a verified push."""
        branch = push.branch
        reason = None
        if push.deleted:
            reason = f"{push.ref} was deleted"
        elif branch is None:
            reason = f"{push.ref} is not a branch"
        elif not any(github.branch_matches(t, branch) for t in triggers):
            wanted = sorted({b for t in triggers for b in t.branches})
            reason = f"branch {branch!r} is not one of {', '.join(wanted)}"
        if reason:
            self._record(workflow, "git", delivery, "ignored", reason=reason, status_code=200, source=source)
            return {"workflow": workflow, "outcome": "ignored", "reason": reason}
        declared = self.runs.catalog.get(workflow).inputs
        inputs = {k: v for k, v in push.inputs().items() if k in declared}
        request = StartRun(inputs=inputs, idempotency_key=f"git:{delivery}")
        try:
            resolve_inputs(self.runs.catalog.get(workflow), request.inputs)
        except InvalidInputs as error:
            self._refuse(workflow, "git", delivery, error, source)
            return {"workflow": workflow, "outcome": "refused", "reason": error.message}
        try:
            started = self.runs.start_run(
                workflow,
                request,
                started_by=push.pusher,
                trigger=Trigger.GIT,
                trigger_detail=f"{branch} @ {push.commit[:7]}",
                run_id=self._run_id(workflow, "git", delivery),
            )
        except WorkflowPaused as error:
            self._refuse(workflow, "git", delivery, error, source)
            return {"workflow": workflow, "outcome": "refused", "reason": error.message}
        first = self._first(workflow, "git", delivery)
        outcome = "started" if first and started["created"] else "duplicate"
        self._record(
            workflow, "git", delivery, outcome, run_id=started["run_id"], status_code=202, source=source
        )
        return {"workflow": workflow, "outcome": outcome, "run_id": started["run_id"]}


def _webhook_inputs(mapping_: dict[str, str], body: bytes) -> dict[str, Any]:
    """The run's inputs from a webhook body: per the trigger's mapping, or the body's object as is."""
    if not body.strip():
        parsed: Any = {}
    else:
        try:
            parsed = json.loads(body)
        except ValueError:
            raise BadRequest("the webhook body is not JSON") from None
    if mapping_:
        return mapping.map_inputs(mapping_, parsed)
    if not isinstance(parsed, dict):
        raise InvalidInputs("without an inputs mapping the webhook body must be a JSON object of inputs")
    return parsed


def _github_payload(body: bytes, content_type: str | None) -> Any:
    """The event as JSON: GitHub sends it raw (application/json) or as the form field `payload`."""
    try:
        if (content_type or "").startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode("utf-8"))
            return json.loads(form["payload"][0]) if "payload" in form else None
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None


def _schedule_view(definition: WorkflowDefinition) -> dict[str, Any]:
    """What the schedules module adds to a workflow's trigger view (next fire times), if it is installed."""
    try:
        from flowdeck.triggers import schedules  # another helper's module, optional
    except ImportError:
        return {}
    view = getattr(schedules, "trigger_view", None)
    return view(definition) if callable(view) else {}
