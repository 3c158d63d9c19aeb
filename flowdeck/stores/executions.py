"""Step Functions executions: start a workflow's state machine as a run, read its status, stop it."""

from __future__ import annotations

import json
from typing import Any

from botocore.exceptions import ClientError

from flowdeck import aws


class Executions:
    def __init__(self, state_machine_arn_prefix: str, client: Any = None) -> None:
        self.prefix = state_machine_arn_prefix
        self.client = client or aws.client("stepfunctions")

    def state_machine_arn(self, workflow: str) -> str:
        return self.prefix + workflow

    def execution_arn(self, workflow: str, run_id: str) -> str:
        """The ARN an execution named `run_id` of the workflow's state machine has (or would have)."""
        return self.state_machine_arn(workflow).replace(":stateMachine:", ":execution:", 1) + ":" + run_id

    def start(self, workflow: str, run_id: str, payload: dict[str, Any]) -> bool:
        """Start the run; False when an execution of that name exists (an idempotent repeat)."""
        try:
            self.client.start_execution(
                stateMachineArn=self.state_machine_arn(workflow), name=run_id, input=json.dumps(payload)
            )
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionAlreadyExists":
                return False
            raise
        return True

    def status(self, arn: str) -> str | None:
        """The execution's status (RUNNING, SUCCEEDED, ...), or None when there is no such execution."""
        try:
            described = self.client.describe_execution(executionArn=arn)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
                return None
            raise
        return str(described["status"])


def stop_execution(client: Any, arn: str, error: str, cause: str) -> bool:
    """Stop the execution `arn`; False when there is no such execution (a queued run has none yet)."""
    try:
        client.stop_execution(executionArn=arn, error=error, cause=cause)
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ExecutionDoesNotExist":
            return False
        raise
    return True
