"""The run-events Lambda: the runs table's stream -> RunEvents reactions (see flowdeck.runs.events)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.batch import BatchProcessor, EventType, process_partial_response
from aws_lambda_powertools.utilities.data_classes.dynamo_db_stream_event import DynamoDBRecord
from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck import aws
from flowdeck.approvals.wiring import build_ended_approvals
from flowdeck.config import get_settings, per_settings
from flowdeck.control.cancelling import CancelSettler
from flowdeck.control.concurrency import ConcurrencyControl
from flowdeck.control.owed_answers import AnswerSender
from flowdeck.runs.events import Reaction, RunEvents, StepReaction, record_duration
from flowdeck.runs.unrun import record_unrun_steps
from flowdeck.stores.deliveries import Deliveries
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from flowdeck.triggers.deliveries import record_trigger_starts
from lambdas.observability import logger

processor = BatchProcessor(event_type=EventType.DynamoDBStreams)


def concurrency_control() -> ConcurrencyControl:
    """Frees an ended run's slot and starts the workflow's next queued runs."""
    settings = get_settings()
    return ConcurrencyControl(RunStore(settings.runs_table), Executions(settings.state_machine_arn_prefix))


def reactions() -> list[Reaction]:
    """What follows a run's change: each capability adds its reaction here."""
    return [
        concurrency_control().on_run_change,
        # Sets duration_ms once a run ended (the history's by-duration key): UpdateItem on the runs table.
        record_duration(RunStore(get_settings().runs_table)),
        # Trigger history rows for runs Scheduler and EventBridge start directly: PutItem on deliveries.
        record_trigger_starts(Deliveries(get_settings().deliveries_table)),
        # Approvals a finished run left undecided: Slack message rewritten (GetSecretValue flowdeck/slack,
        # HTTPS to Slack), inbox items deleted.
        build_ended_approvals().on_run_change,
        # A cancel under way whose run has nothing left running reads cancelled (conditional UpdateItem).
        cancel_settler().on_run_change,
        # Steps an ended run never reached read skipped (or cancelled), with why: Query and conditional
        # UpdateItem on the runs table.
        record_unrun_steps(RunStore(get_settings().runs_table)),
    ]


@per_settings
def cancel_settler() -> CancelSettler:
    """Records a cancelled run `cancelled` once none of its processes runs (Query and UpdateItem)."""
    return CancelSettler(RunStore(get_settings().runs_table))


@per_settings
def answer_sender() -> AnswerSender:
    """Sends the task-token answer a recorded decision still owes (SendTaskSuccess/Failure, UpdateItem)."""
    settings = get_settings()
    return AnswerSender(RunStore(settings.runs_table), aws.client("stepfunctions", settings))


def step_reactions() -> list[StepReaction]:
    """What follows a step's change (the stack's event filter passes only the changes these need)."""
    return [cancel_settler().on_step_change, answer_sender().on_step_change]


@per_settings
def run_events() -> RunEvents:
    """The reactions over the configured tables and state machines."""
    return RunEvents(reactions(), step_reactions())


def _record(record: DynamoDBRecord) -> None:
    run_events().handle(record.raw_event)


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    # Partial batch responses: only failed records come back (the event source must report them).
    return dict(
        process_partial_response(event=event, record_handler=_record, processor=processor, context=context)
    )
