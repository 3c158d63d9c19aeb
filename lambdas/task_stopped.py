"""The stopped-task Lambda: EventBridge (ECS Task State Change, STOPPED, the fresh cluster) -> fail the
step's token when its runner never answered (flowdeck.control.stopped_tasks)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from flowdeck import aws
from flowdeck.config import get_settings, per_settings
from flowdeck.control.stopped_tasks import StoppedTasks
from flowdeck.stores.tasks import TaskTokens
from lambdas.observability import logger


@per_settings
def stopped_tasks() -> StoppedTasks:
    """Fails task tokens (SendTaskFailure on the workflows' state machines)."""
    return StoppedTasks(TaskTokens(aws.client("stepfunctions", get_settings())))


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return {"failed": stopped_tasks().handle(event)}
