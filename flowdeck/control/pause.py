"""Decisions on a step paused on failure (SPEC §3 `POST /runs/{id}/steps/{step}/retry` · `/skip`).

A step with `on_failure: pause` that failed waits in its `<step>:Paused` state: a task token, no
compute. Retry step runs it again as a new attempt (earlier attempts and other steps' outputs kept);
Skip step (only where `allow_skip`) records it `skipped` and the run goes on. One conditional write
on the step decides (status `waiting` with the token read), so of two decisions exactly one wins;
then the token is answered and the state machine's `<step>:Decision` Choice routes on it.
"""

from __future__ import annotations

import logging
import threading
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowdeck.clock import now_iso
from flowdeck.constants import ATTEMPT_PREFIX
from flowdeck.control.owed_answers import OWED_ANSWER, AnswerSender, OwedAnswer
from flowdeck.control.permissions import Permissions
from flowdeck.errors import Conflict, FlowdeckError
from flowdeck.stores.run_lookup import load_run
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.pause")

Decision = Literal["retry", "skip"]
MAX_COMMENT = 1000
# The emulator's conditional writes are not atomic across threads: decisions taken in one process
# (the local stack, one Lambda container) go one at a time. Across containers DynamoDB's condition decides.
_deciding = threading.Lock()


class StepNotFound(FlowdeckError):
    code = "StepNotFound"
    status = 404


class StepNotWaiting(Conflict):
    """A decision on a step that is not paused (any more): it runs, ended, or was decided meanwhile."""

    code = "StepNotWaiting"


class SkipNotAllowed(Conflict):
    """Skip step on a step whose definition does not say `allow_skip: true`."""

    code = "SkipNotAllowed"


class StepDecision(BaseModel):
    """Body of POST /runs/{id}/steps/{step}/retry and /skip (optional)."""

    model_config = ConfigDict(extra="forbid")
    comment: str | None = Field(default=None, min_length=1, max_length=MAX_COMMENT)


class Decided(BaseModel):
    """The 202 answer: the decision is recorded and the run moves on."""

    run_id: str
    step: str
    decision: Decision
    status: Literal["pending", "skipped"]
    by: str
    at: str
    # Retry step: the attempt number the step runs next.
    next_attempt: int | None = None


def recorded_attempts(item: dict[str, Any]) -> list[dict[str, Any]]:
    """The step's attempt records, oldest first."""
    found = [v for k, v in item.items() if k.startswith(ATTEMPT_PREFIX) and isinstance(v, dict)]
    return sorted(found, key=lambda a: int(a.get("attempt", 0)))


class PauseDecisions:
    """Retry step and Skip step on a step waiting after its failure."""

    def __init__(self, runs: RunStore, sfn: Any, permissions: Permissions) -> None:
        self.runs = runs
        self.sfn = sfn
        self.permissions = permissions

    def decide(
        self, run_id: str, step_id: str, decision: Decision, request: StepDecision, caller: str
    ) -> Decided:
        """Record the decision and answer the waiting token: 404 unknown, 403 not the caller's to take,
        409 not waiting or no skip."""
        with _deciding:
            return self._decide(run_id, step_id, decision, request, caller)

    def _decide(
        self, run_id: str, step_id: str, decision: Decision, request: StepDecision, caller: str
    ) -> Decided:
        run, steps, _ = load_run(self.runs, run_id, require="plan")
        if step_id not in {s.get("id") for s in run["plan"]}:
            raise StepNotFound(f"run {run_id} has no step {step_id!r}")
        self.permissions.check(str(run.get("workflow", "")), decision, caller)
        item = steps.get(step_id, {})
        token = item.get("wait_token")
        status = item.get("status", "pending")
        if status != "waiting" or not isinstance(token, str):
            raise StepNotWaiting(
                f"step {step_id} of run {run_id} is {status}, not paused on failure: nothing to decide"
            )
        if decision == "skip" and not item.get("allow_skip"):
            raise SkipNotAllowed(
                f"step {step_id} may not be skipped (its definition has no `allow_skip: true`): "
                f"retry it or cancel the run"
            )
        at = now_iso()
        attempts = recorded_attempts(item)
        done = int(attempts[-1].get("attempt", 0)) if attempts else 0
        record: dict[str, Any] = {"decision": decision, "by": caller, "at": at, "after_attempt": done}
        if request.comment:
            record["comment"] = request.comment
        extra: dict[str, Any] = {}
        if attempts and attempts[-1].get("status") == "running":
            # The state machine recorded a lost worker on the step only; close that attempt too.
            last = f"{ATTEMPT_PREFIX}{done}"
            extra |= {
                f"{last}.status": "failed",
                f"{last}.error": item.get("error"),
                f"{last}.cause": item.get("cause"),
                f"{last}.ended_at": item.get("ended_at") or at,
            }
        new_status: Literal["pending", "skipped"] = "pending" if decision == "retry" else "skipped"
        # The answer is recorded with the decision: sent below, or by the run-events reaction if this
        # process dies first (flowdeck.control.owed_answers).
        owed = OwedAnswer(
            token=token,
            outcome="success",
            output={"decision": decision, "attempts": done},
            resumes_run=True,
            workflow=str(run.get("workflow", "")),
        )
        extra[OWED_ANSWER] = owed.encoded()
        if not self.runs.record_decision(run_id, step_id, token, new_status, record, extra):
            raise StepNotWaiting(f"step {step_id} of run {run_id} was decided or ended meanwhile")
        if not AnswerSender(self.runs, self.sfn).answer(run_id, step_id, owed):
            # The deadline or a cancel ended the pause first: their record of the step stands.
            log.info("run %s: step %s pause had ended before the %s", run_id, step_id, decision)
            raise StepNotWaiting(
                f"step {step_id} of run {run_id} stopped waiting (deadline passed or run cancelled)"
            )
        log.info("run %s: step %s %s by %s", run_id, step_id, decision, caller)
        return Decided(
            run_id=run_id,
            step=step_id,
            decision=decision,
            status=new_status,
            by=caller,
            at=at,
            next_attempt=done + 1 if decision == "retry" else None,
        )
