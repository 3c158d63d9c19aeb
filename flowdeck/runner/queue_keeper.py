"""Keep steps that wait in the queue alive while every worker slot is busy.

A step's heartbeat timeout (the state's `HeartbeatSeconds`) counts from the moment Step Functions sends
its message, not from the moment a worker takes it. With more steps ready than worker slots (100 runs
started at once), a message could wait longer than that in the queue, and its step failed `WorkerLost`
although no worker was ever lost. While its own slots are all taken, a worker therefore takes the
waiting messages every KEEP_EVERY_SECONDS, sends each step's heartbeat, and puts each message back as a
new one (same body): a new message has a fresh receive count, so being kept never sends a message to
the dead-letter queue. A step whose token no longer waits (its run was cancelled or ended) is dropped.
If every worker dies, nobody keeps the waiting steps and they fail `WorkerLost` as before: truthfully.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from flowdeck.constants import HEARTBEAT_EVERY_SECONDS
from flowdeck.messages import StepMessage
from flowdeck.runner.cleanup import message_type
from flowdeck.runner.periodic import Periodic
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.worker")

# Half the runner's beat: a step taken just before its next round was beaten at most this long before
# the runner's first beat (HEARTBEAT_EVERY_SECONDS later), well inside the default 30 s heartbeat.
KEEP_EVERY_SECONDS = HEARTBEAT_EVERY_SECONDS / 2
# SQS hands out at most 10 messages per receive; this bounds one round to 1,000 waiting messages.
MAX_RECEIVES = 100
# Messages taken to be kept are hidden this long: enough to beat and put back a batch of ten.
HOLD_SECONDS = 15
# Received batches handled side by side, and heartbeats of one batch (at most 10) sent side by side:
# a round over 100 waiting steps must end well inside their heartbeat however slow one answer is.
BATCHES_AT_ONCE = 4
BEATS_AT_ONCE = 10


class QueueKeeper(Periodic):
    """Every KEEP_EVERY_SECONDS while `busy()`: heartbeat each waiting step and put its message back."""

    def __init__(
        self,
        sqs: Any,
        queue_url: str,
        tokens: TaskTokens,
        busy: Callable[[], bool],
        every: float = KEEP_EVERY_SECONDS,
    ) -> None:
        super().__init__(every, name="queue-keeper")
        self.sqs = sqs
        self.queue_url = queue_url
        self.tokens = tokens
        self.busy = busy
        self._batches = ThreadPoolExecutor(BATCHES_AT_ONCE, thread_name_prefix="keeper")
        self._beats = ThreadPoolExecutor(BEATS_AT_ONCE, thread_name_prefix="keeper-beat")

    def beat(self) -> bool:
        if self.busy():
            try:
                self.keep_waiting()
            except (ClientError, BotoCoreError) as exc:
                log.warning("keeping the waiting steps alive failed: %s", exc)
        return True

    def keep_waiting(self) -> int:
        """One round over the queue: each message waiting now is put back once (step ones beaten first)."""
        seen: set[str] = set()
        kept: list[Future[None]] = []
        for _ in range(MAX_RECEIVES):
            messages = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=HOLD_SECONDS,
                WaitTimeSeconds=0,
            ).get("Messages", [])
            if not messages:
                break
            fresh = [raw for raw in messages if raw["Body"] not in seen]
            seen.update(raw["Body"] for raw in fresh)
            kept.append(self._batches.submit(self._keep, messages, {raw["MessageId"] for raw in fresh}))
            if not fresh:
                break  # round done: the queue hands out only what this round put back
        wait(kept)
        for batch in kept:
            batch.result()  # the first failure is logged by beat(); the others' messages come back
        return len(seen)

    def _keep(self, messages: list[dict[str, Any]], beat: set[str]) -> None:
        """Put every message of a received batch back as a new one, beating the steps among `beat` first."""
        tokens = {raw["MessageId"]: _step_token(raw["Body"]) for raw in messages}
        due = {id_: token for id_, token in tokens.items() if token is not None and id_ in beat}
        alive = dict(zip(due, self._beats.map(self._beat, due.values()), strict=True))
        # Cleanups and pauses have no heartbeat; they are put back too, so their receive count
        # (the dead-letter queue's measure) is not spent by being kept.
        resend = [raw for raw in messages if alive.get(raw["MessageId"], True)]
        # A step nobody waits for any more (its run was cancelled or ended) has nothing to run.
        drop = [raw for raw in messages if not alive.get(raw["MessageId"], True)]
        if resend:
            self.sqs.send_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "MessageBody": raw["Body"]} for i, raw in enumerate(resend)],
            )
        # After the new copies exist: dying in between leaves a duplicate, which the start record refuses.
        self.sqs.delete_message_batch(
            QueueUrl=self.queue_url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": raw["ReceiptHandle"]} for i, raw in enumerate(resend + drop)
            ],
        )

    def _beat(self, token: str) -> bool:
        """False only when the token no longer waits; a failed beat keeps the step (next round retries)."""
        try:
            return self.tokens.heartbeat(token)
        except (ClientError, BotoCoreError) as exc:
            log.warning("heartbeat of a waiting step failed: %s", exc)
            return True


def _step_token(body: str) -> str | None:
    """The task token of a step message (not a cleanup or a pause), or None."""
    if message_type(body) is not None:
        return None
    try:
        return StepMessage.model_validate_json(body).token
    except ValidationError:
        return None
