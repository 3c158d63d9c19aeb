"""Pool worker: the poll loop that takes messages from the steps queue and hands each to its runner.

The same entry point runs as the ECS Fargate service on AWS and as local processes in the
embedded local stack: `python -m flowdeck.runner.worker`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from flowdeck import aws
from flowdeck.config import Settings, get_settings
from flowdeck.messages import WAIT_MESSAGE_TYPE, StepMessage, WaitMessage
from flowdeck.runner.budget import BudgetGuard
from flowdeck.runner.cleanup import CLEANUP_TYPE, CleanupMessage, CleanupRunner, QueueLease, message_type
from flowdeck.runner.pause import PauseRecorder
from flowdeck.runner.protection import ScaleInProtection
from flowdeck.runner.queue_keeper import QueueKeeper
from flowdeck.runner.step_runner import HANDBACK_GRACE_SECONDS, StepRunner
from flowdeck.stores.artifacts import ArtifactStore, s3_client
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.worker")

MESSAGE_VISIBILITY_SECONDS = 5
# Set by the local stack: the worker exits when that process is gone.
EXIT_WITH_PARENT_ENV = "FLOWDECK_EXIT_WITH_PARENT"
# What a handed-back step needs after its process ends, within the stop timeout: the log's last lines,
# the attempt's record and the answer to Step Functions.
ANSWER_RESERVE_SECONDS = 10.0


class Worker:
    """Polls the steps queue and runs up to `concurrency` steps at once."""

    def __init__(self, settings: Settings, concurrency: int | None = None) -> None:
        self.settings = settings
        self.sqs = aws.client("sqs", settings)
        self.sfn = aws.client("stepfunctions", settings)
        self.tokens = TaskTokens(self.sfn)
        artifacts = ArtifactStore(settings.artifacts_bucket, s3_client(settings))
        runs_client = aws.client("dynamodb", settings)
        self.runner = StepRunner(
            settings,
            RunStore(settings.runs_table, runs_client, artifacts=artifacts),
            self.sfn,
            artifacts,
            logs=LogStore(settings.logs_table, aws.client("dynamodb", settings, validate=False)),
            budget=BudgetGuard.for_settings(settings, runs_client, self.sfn),
        )
        # Runs the cleanup commands of a run cancelled with cleanup (messages of type "cleanup").
        self.cleanup = CleanupRunner(settings, self.runner.runs, self.runner.logs)
        # Records a step paused on failure as waiting (messages of type "wait"), holding no slot for long.
        self.pauses = PauseRecorder(self.runner.runs, self.sfn)
        self.concurrency = concurrency or settings.worker_concurrency
        self.slots = threading.Semaphore(self.concurrency)
        self._taken = 0  # messages handed to the pool and not yet done
        self._taken_lock = threading.Lock()
        # While every slot is busy, steps waiting in the queue are kept alive (flowdeck.runner.queue_keeper).
        self.keeper = QueueKeeper(self.sqs, settings.steps_queue_url, self.tokens, self.busy)
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="step")
        self.shutdown = threading.Event()
        # On while the worker holds a step, so a scale-in or a deploy stops an idle worker instead.
        self.protection = ScaleInProtection.for_agent(settings.ecs_agent_uri)
        self._hand_back_timer: threading.Timer | None = None

    def stop(self) -> None:
        """Take no more messages; finish the steps held, or hand them back before the stop timeout ends.

        Finishing is worth the wait (most steps are short, and a step run again redoes its work);
        a step still running when only the hand-back's time is left is ended and failed with
        WorkerStopped, which the state machine retries on another worker, so it never waits for
        the heartbeat timeout and is never recorded as a lost worker.
        """
        if self.shutdown.is_set():
            return
        self.shutdown.set()
        finish_within = self.settings.worker_stop_seconds - HANDBACK_GRACE_SECONDS - ANSWER_RESERVE_SECONDS
        self._hand_back_timer = threading.Timer(max(finish_within, 0.0), self.runner.hand_back)
        self._hand_back_timer.daemon = True
        self._hand_back_timer.start()

    def run_forever(self, wait_seconds: int | None = None) -> None:
        wait_seconds = self.settings.worker_poll_seconds if wait_seconds is None else wait_seconds
        with self.keeper:
            self._poll(wait_seconds)
        self.pool.shutdown(wait=True)
        if self._hand_back_timer is not None:
            self._hand_back_timer.cancel()
        self.protection.close()

    def busy(self) -> bool:
        """Every slot runs a step: nothing this worker takes from the queue would start now."""
        with self._taken_lock:
            return self._taken >= self.concurrency

    def _poll(self, wait_seconds: int) -> None:
        while not self.shutdown.is_set():
            self.slots.acquire()
            if self.shutdown.is_set():  # told to stop while every slot was busy: take nothing more
                self.slots.release()
                break
            free = 1
            while free < min(self.concurrency, 10) and self.slots.acquire(blocking=False):
                free += 1
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.settings.steps_queue_url,
                    MaxNumberOfMessages=free,
                    WaitTimeSeconds=wait_seconds,
                    # Short: a message handed to a receive whose worker died meanwhile comes back in
                    # seconds, well inside the step's heartbeat time (a live worker deletes it at once).
                    VisibilityTimeout=MESSAGE_VISIBILITY_SECONDS,
                    # When the token's heartbeat clock started: its first beat is due `every` after.
                    MessageSystemAttributeNames=["SentTimestamp"],
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("cannot read the steps queue: %s", exc)
                self.shutdown.wait(1)
                response = {}
            messages = response.get("Messages", [])
            if self.shutdown.is_set():
                self._give_back(messages)  # received as the stop came: another worker takes them
                messages = []
            for _ in range(free - len(messages)):
                self.slots.release()
            for raw in messages:
                with self._taken_lock:
                    self._taken += 1
                self.pool.submit(self._take, raw)

    def _give_back(self, messages: list[dict[str, Any]]) -> None:
        """Make messages this stopping worker will not start visible again at once."""
        for raw in messages:
            try:
                self.sqs.change_message_visibility(
                    QueueUrl=self.settings.steps_queue_url,
                    ReceiptHandle=raw["ReceiptHandle"],
                    VisibilityTimeout=0,
                )
            except (ClientError, BotoCoreError) as exc:
                # It comes back anyway when its short visibility timeout ends.
                log.warning("a message was not given back at once: %s", exc)

    def _take(self, raw: dict[str, Any]) -> None:
        with self.protection.holding():
            self._handle(raw)

    def _handle(self, raw: dict[str, Any]) -> None:
        try:
            if message_type(raw["Body"]) == CLEANUP_TYPE:
                # Kept until the cleanup is over: a worker dying meanwhile is found by its redelivery.
                lease = QueueLease(self.sqs, self.settings.steps_queue_url, raw["ReceiptHandle"])
                self.cleanup.handle(CleanupMessage.model_validate_json(raw["Body"]), lease=lease)
                return
            # Deleted at once, beside the step: a worker that dies mid-step is caught by the heartbeat
            # timeout, not by redelivery (and a redelivery would be refused by the start record).
            self.runner.io.submit(
                self.sqs.delete_message,
                QueueUrl=self.settings.steps_queue_url,
                ReceiptHandle=raw["ReceiptHandle"],
            )
            if message_type(raw["Body"]) == WAIT_MESSAGE_TYPE:
                self.pauses.handle(WaitMessage.model_validate_json(raw["Body"]))
                return
            try:
                message = StepMessage.model_validate_json(raw["Body"])
            except ValidationError as exc:
                self._reject(raw["Body"], exc)
                return
            self.runner.handle(message, waited=waited_in_queue(raw))
        except Exception as exc:  # one bad step must never take the worker down
            log.exception("step message failed")
            self._fail_fast(raw.get("Body", ""), exc)
        finally:
            with self._taken_lock:
                self._taken -= 1
            self.slots.release()

    def _fail_fast(self, body: str, exc: Exception) -> None:
        """Fail the step now rather than leave the run waiting for the heartbeat timeout."""
        try:
            token = json.loads(body).get("token")
            if isinstance(token, str):
                self.tokens.fail(token, "RunnerError", f"the worker failed: {exc.__class__.__name__}")
        except (ValueError, AttributeError, ClientError, BotoCoreError):
            log.warning("could not report the failure to Step Functions; the heartbeat timeout will")

    def _reject(self, body: str, exc: ValidationError) -> None:
        log.error("malformed step message: %s", exc.errors(include_url=False, include_input=False))
        try:
            token = json.loads(body).get("token")
        except (ValueError, AttributeError):
            return
        if isinstance(token, str):
            self.tokens.fail(token, "InvalidStepMessage", "malformed step message")


def waited_in_queue(raw: dict[str, Any]) -> float | None:
    """Seconds since the message was sent (SQS's SentTimestamp); None when SQS did not say."""
    sent = raw.get("Attributes", {}).get("SentTimestamp")
    if sent is None or not sent.isdigit():
        return None
    return max(time.time() - int(sent) / 1000, 0.0)


def exit_with_parent(parent_pid: int, every: float = 1.0) -> None:
    """Leave when the process that started us is gone (the local stack), never lingering alone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        log.warning("parent %s is gone; exiting", parent_pid)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if parent := os.environ.get(EXIT_WITH_PARENT_ENV):
        exit_with_parent(int(parent))
    worker = Worker(get_settings())
    # ECS sends SIGTERM on a scale-in or a deploy, then SIGKILL after the stop timeout.
    signal.signal(signal.SIGTERM, lambda *_: worker.stop())
    signal.signal(signal.SIGINT, lambda *_: worker.stop())
    worker.run_forever()


if __name__ == "__main__":
    main()
