"""The run-events Lambda: the runs table's stream -> RunEvents reactions (see flowdeck.run_events)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck.run_events import Reaction, RunEvents
from lambdas.observability import logger

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def reactions() -> list[Reaction]:
    """What follows a run's change: each capability adds its reaction here."""
    return []


@lru_cache(maxsize=1)
def run_events() -> RunEvents:
    return RunEvents(reactions())


def _record(record: DynamoDBRecord) -> None:
    run_events().handle(record.raw_event)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Partial batch responses: only failed records come back (the event source must report them).
    return dict(
        process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
    )
