"""Task-token answers a decision owes, kept on the step until sent: a decision survives the API dying.

A decision (approve, reject, retry step, skip step) is recorded on the step together with the
answer it owes the waiting state (`owed_answer`, JSON). The API then sends that answer and forgets
it. If the API died in between, the run-events reaction on the step's change sends it instead: it
marks the answer as being paid (so an API that is still alive and finds the token answered knows
it was), sends it, and forgets it. A token already answered, by either, is fine.
"""

from __future__ import annotations

import json
import logging
from typing import Any, Literal

from botocore.exceptions import ClientError
from pydantic import BaseModel, ConfigDict, ValidationError

from flowdeck.constants import PK, SK, STEP_SK_PREFIX
from flowdeck.control.cancelling import TOKEN_GONE, now_iso
from flowdeck.stores.conditions import conditional
from flowdeck.stores.runs import RunStore, from_item

log = logging.getLogger("flowdeck.decisions")

OWED_ANSWER = "owed_answer"
PAYING_SINCE = "owed_answer_paying_at"
# The token of the last answer sent (read by an API that found its token answered).
ANSWERED_TOKEN = "answered_token"  # noqa: S105 - an attribute name, not a secret
CAUSE_LIMIT = 32_768


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
        self.sfn = sfn

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
        owed = decode(self._step(run_id, step).get(OWED_ANSWER))
        if owed is None:
            return
        with conditional() as mark:
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._key(run_id, step),
                UpdateExpression="SET #paying = :now",
                ConditionExpression="#owed = :owed",
                ExpressionAttributeNames={"#paying": PAYING_SINCE, "#owed": OWED_ANSWER},
                ExpressionAttributeValues={":now": {"S": now_iso()}, ":owed": {"S": owed.encoded()}},
            )
        if not mark.held:
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
        names = {"#owed": OWED_ANSWER, "#paying": PAYING_SINCE}
        values = {":owed": {"S": owed.encoded()}}
        update = "REMOVE #owed, #paying"
        if answered:
            update = "SET #answered = :token " + update
            names["#answered"] = ANSWERED_TOKEN
            values[":token"] = {"S": owed.token}
        with conditional():
            self.runs.client.update_item(
                TableName=self.runs.table,
                Key=self._key(run_id, step),
                UpdateExpression=update,
                ConditionExpression="#owed = :owed",
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )

    def _send(self, run_id: str, step: str, owed: OwedAnswer) -> bool:
        """Resume the run if owed, then answer the token; False when it no longer waits."""
        if owed.resumes_run:
            _, steps, _ = self.runs.get_run_items(run_id)
            if not any(item.get("status") == "waiting" for other, item in steps.items() if other != step):
                self.runs.set_run_status(run_id, owed.workflow, "running", ("waiting",))
        try:
            if owed.outcome == "success":
                self.sfn.send_task_success(taskToken=owed.token, output=json.dumps(owed.output or {}))
            else:
                self.sfn.send_task_failure(
                    taskToken=owed.token, error=owed.error or "Failed", cause=(owed.cause or "")[:CAUSE_LIMIT]
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in TOKEN_GONE:
                raise
            return False
        return True

    def _paid_elsewhere(self, run_id: str, step: str, owed: OwedAnswer) -> bool:
        """True when the reaction is sending this answer, or sent it (its token noted as answered)."""
        item = self._step(run_id, step)
        if item.get(OWED_ANSWER) is None:
            return item.get(ANSWERED_TOKEN) == owed.token
        return decode(item[OWED_ANSWER]) == owed and item.get(PAYING_SINCE) is not None

    def _step(self, run_id: str, step: str) -> dict[str, Any]:
        answer = self.runs.client.get_item(
            TableName=self.runs.table, Key=self._key(run_id, step), ConsistentRead=True
        )
        return from_item(answer.get("Item", {}))

    @staticmethod
    def _key(run_id: str, step: str) -> dict[str, Any]:
        return {PK: {"S": run_id}, SK: {"S": STEP_SK_PREFIX + step}}
