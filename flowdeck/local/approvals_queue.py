"""SQS -> a Lambda handler, locally: the approvals queue's event source mapping (the notifier).

One thread long-polls the queue, calls the handler with the Lambda SQS event shape (a batch at a
time) and deletes the messages the handler did not report in `batchItemFailures`; those come back
after the queue's visibility timeout, as on AWS.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Callable
from typing import Any

from flowdeck.local.http import LocalLambdaContext

Handler = Callable[[dict[str, Any], Any], Any]

BATCH_SIZE = 10
WAIT_SECONDS = 1
REGION = "us-east-1"

logger = logging.getLogger(__name__)


def lambda_sqs_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """ReceiveMessage messages as Lambda's SQS event source passes them to a function."""
    return {
        "Records": [
            {
                "messageId": m["MessageId"],
                "receiptHandle": m["ReceiptHandle"],
                "body": m["Body"],
                "attributes": m.get("Attributes", {}),
                "messageAttributes": m.get("MessageAttributes", {}),
                "md5OfBody": m.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": REGION,
            }
            for m in messages
        ]
    }


class QueuePoller:
    """Feeds one queue's messages to one handler; start()/stop()."""

    def __init__(self, handler: Handler, queue_url: str, sqs: Any, name: str = "notifier") -> None:
        self.handler = handler
        self.queue_url = queue_url
        self.sqs = sqs
        self.name = name
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def start(self) -> QueuePoller:
        self._thread = threading.Thread(target=self._run, name=f"flowdeck-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=WAIT_SECONDS + 5)
            self._thread = None

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception:
                logger.exception(
                    "%s: a batch failed; its messages come back after the visibility timeout", self.name
                )
                self._stop.wait(1)

    def poll_once(self) -> int:
        """One receive and its batch; the number of messages handled."""
        answer = self.sqs.receive_message(
            QueueUrl=self.queue_url,
            MaxNumberOfMessages=BATCH_SIZE,
            WaitTimeSeconds=WAIT_SECONDS,
            AttributeNames=["All"],
        )
        messages = answer.get("Messages", [])
        if not messages:
            return 0
        result = (
            self.handler(
                lambda_sqs_event(messages, self.queue_arn),
                LocalLambdaContext(aws_request_id=str(uuid.uuid4()), function_name=self.name),
            )
            or {}
        )
        failed = {f["itemIdentifier"] for f in result.get("batchItemFailures", [])}
        done = [m for m in messages if m["MessageId"] not in failed]
        if done:
            self.sqs.delete_message_batch(
                QueueUrl=self.queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(done)],
            )
        return len(messages)
