"""The fan-out Lambda: DynamoDB Streams of the runs and logs tables -> every subscribed WebSocket."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck.live.frames import status_message
from flowdeck.stores.logs import batch_from_item
from flowdeck.stores.runs import from_item
from lambdas.live_deps import live_service
from lambdas.observability import logger


def _image(image: dict[str, Any] | None) -> dict[str, Any] | None:
    return from_item(image) if image else None


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    service = live_service()
    batches: dict[str, list[dict[str, Any]]] = defaultdict(list)
    statuses: list[dict[str, Any]] = []
    for record in event.get("Records", []):
        if record.get("eventName") == "REMOVE":
            continue
        change = record.get("dynamodb", {})
        keys = _image(change.get("Keys")) or {}
        if "seq" in keys and "NewImage" in change:
            batches[str(keys["run_id"])].append(batch_from_item(change["NewImage"]))
        elif "sk" in keys:
            message = status_message(keys, _image(change.get("NewImage")))
            # An item written before the state machine records the run has no status: nothing to show.
            if message is None or message.get("status") is None:
                continue
            # Heartbeats and output writes change the item, not what a viewer sees: skip those.
            if message != status_message(keys, _image(change.get("OldImage"))):
                statuses.append(message)
    # Status first: a step's "running" should reach the viewer before its first lines when both are here.
    for message in statuses:
        service.on_status(message)
    for run_id, run_batches in batches.items():
        service.on_log_batches(run_id, run_batches)
    logger.debug("fan-out done", extra={"statuses": len(statuses), "runs_with_logs": len(batches)})
    return {"batchItemFailures": []}
