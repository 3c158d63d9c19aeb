"""Task-token answers a decision owes, kept on the step until sent: a decision survives the API dying.

A decision (approve, reject, retry step, skip step) is recorded on the step together with the
answer it owes the waiting state (`owed_answer`, JSON). The API then sends that answer and forgets
it. If the API died in between, the run-events reaction on the step's change sends it instead: it
marks the answer as being paid (so an API that is still alive and finds the token answered knows
it was), sends it, and forgets it. A token already answered, by either, is fine.
"""

from __future__ import annotations

import logging
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from flowdeck.clock import now_iso
from flowdeck.constants import PK, SK, STEP_SK_PREFIX
from flowdeck.stores.owed_answers import ANSWERED_TOKEN, OWED_ANSWER, PAYING_SINCE, OwedAnswerRecords
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.decisions")


class OwedAnswer(BaseModel):
    """The answer a recorded decision owes its step's task token."""

    model_config = ConfigDict(extra="forbid")
    token: str
    outcome: Literal["success", "failure"]
    output: dict[str, Any] | None = None
    error: str | None = None
    cause: str | None = None
    # Approve, retry, skip: the run goes back from `waiting` to `running` before the answer (unless
    # another of its steps still waits), so the next step starts in a running run.
    resumes_run: bool = False
    workflow: str = ""

    def encoded(self) -> str:
        return self.model_dump_json(exclude_none=True)


def decode(value: object) -> OwedAnswer | None:
    """The owed answer stored on a step, or None (absent or unreadable: nothing can be sent)."""
    if not isinstance(value, str):
        return None
    try:
        return OwedAnswer.model_validate_json(value)
    except ValidationError:
        log.error("an owed answer that cannot be read: %s", value[:200])
        return None


class AnswerSender:
    """Sends an owed answer and forgets it; used by the API right after a decision and by the reaction."""

    def __init__(self, runs: RunStore, sfn: Any) -> None:
        self.runs = runs
        self.records = OwedAnswerRecords(runs)
        self.tokens = TaskTokens(sfn)

    def answer(self, run_id: str, step: str, owed: OwedAnswer) -> bool:
        """The API's part, right after recording: send and forget; False when the token no longer waits."""
        # A token the reaction is answering (or answered) with this very answer counts as answered.
        if self._send(run_id, step, owed):
            self.forget(run_id, step, owed, answered=True)
            return True
        if self._paid_elsewhere(run_id, step, owed):
            return True
        self.forget(run_id, step, owed, answered=False)
        return False

    def pay_owed(self, run_id: str, step: str) -> None:
        """The reaction's part: send what the step still owes (marked first, so the API knows)."""
        owed = decode(self.records.step(run_id, step).get(OWED_ANSWER))
        if owed is None:
            return
        if not self.records.mark_paying(run_id, step, owed.encoded(), now_iso()):
            return  # sent and forgotten meanwhile
        answered = self._send(run_id, step, owed)
        self.forget(run_id, step, owed, answered)
        if answered:
            log.warning("run %s: step %s: sent the answer its decision owed (the API did not)", run_id, step)

    def on_step_change(self, old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        """Run-events step reaction: a step that owes an answer nobody is sending gets it sent."""
        if new.get(OWED_ANSWER) is None or new.get(PAYING_SINCE) is not None:
            return
        self.pay_owed(str(new[PK]), str(new[SK]).removeprefix(STEP_SK_PREFIX))

    def forget(self, run_id: str, step: str, owed: OwedAnswer, answered: bool) -> None:
        """Drop the owed answer (noting the token when it was answered); a newer owed answer stays."""
        self.records.forget(run_id, step, owed.encoded(), owed.token if answered else None)

    def _send(self, run_id: str, step: str, owed: OwedAnswer) -> bool:
        """Resume the run if owed, then answer the token; False when it no longer waits."""
        if owed.resumes_run:
            _, steps, _ = self.runs.get_run_items(run_id)
            if not any(item.get("status") == "waiting" for other, item in steps.items() if other != step):
                self.runs.set_run_status(run_id, owed.workflow, "running", ("waiting",))
        if owed.outcome == "success":
            return self.tokens.succeed(owed.token, owed.output or {})
        return self.tokens.fail(owed.token, owed.error or "Failed", owed.cause or "")

    def _paid_elsewhere(self, run_id: str, step: str, owed: OwedAnswer) -> bool:
        """True when the reaction is sending this answer, or sent it (its token noted as answered)."""
        item = self.records.step(run_id, step)
        if item.get(OWED_ANSWER) is None:
            return item.get(ANSWERED_TOKEN) == owed.token
        return decode(item[OWED_ANSWER]) == owed and item.get(PAYING_SINCE) is not None
