"""The approvals notifier Lambda: SQS (the approvals queue) -> record and deliver each request.

Partial batch failures: a message whose delivery failed is retried (SQS redelivers it after its
visibility timeout) up to flowdeck.approvals.notifier.MAX_DELIVERY_ATTEMPTS receives; the request is
recorded on the first receive, so nothing waits unseen meanwhile.
"""

from __future__ import annotations

import json
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.sqs_event import SQSRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck.approvals.notifier import ApprovalNotifier
from flowdeck.approvals.wiring import build_notifier
from flowdeck.config import per_settings
from lambdas.observability import logger

processor = BatchProcessor(event_type=EventType.SQS)


@per_settings
def notifier() -> ApprovalNotifier:
    """The notifier over the configured table, Step Functions, SES, Secrets Manager and Slack."""
    return build_notifier()


def record_handler(record: SQSRecord) -> None:
    body: Any = json.loads(record.body)
    if not isinstance(body, dict) or body.get("type") != "approval":
        # Not ours (a stray message): dropped with a log line rather than retried forever.
        logger.warning("ignored a message that is not an approval request", extra={"id": record.message_id})
        return
    receives = int(record.attributes.approximate_receive_count or 1)
    notifier().handle(body, receive_count=receives)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = process_partial_response(
        event=event, record_handler=record_handler, processor=processor, context=context
    )
    return dict(answer)
