"""Step Functions task tokens: the one place that answers a waiting task (success, failure, heartbeat).

Each answer says whether it was delivered or the token was gone (the task timed out, its execution
ended, or it was answered already); any other error passes through to the caller.
"""

from __future__ import annotations

import json
from typing import Any, Final

from botocore.exceptions import ClientError

from flowdeck import aws

# Errors Step Functions answers for a token that no longer waits.
TOKEN_GONE: Final = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})
# SendTaskFailure's limit on `cause`, in characters.
CAUSE_LIMIT: Final = 32_768


def token_gone(exc: BaseException) -> bool:
    """Whether `exc` is Step Functions saying the token no longer waits."""
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") in TOKEN_GONE


class TaskTokens:
    """Answers for tasks that wait for a token; True when delivered, False when the token was gone."""

    def __init__(self, client: Any = None) -> None:
        self.client = client or aws.client("stepfunctions")

    def succeed(self, token: str, output: dict[str, Any]) -> bool:
        """The task succeeded with `output`."""
        return self._answer(self.client.send_task_success, taskToken=token, output=json.dumps(output))

    def fail(self, token: str, error: str, cause: str = "") -> bool:
        """The task failed with `error`; `cause` is cut to what Step Functions takes."""
        return self._answer(
            self.client.send_task_failure, taskToken=token, error=error, cause=cause[:CAUSE_LIMIT]
        )

    def heartbeat(self, token: str) -> bool:
        """The task is still being worked on."""
        return self._answer(self.client.send_task_heartbeat, taskToken=token)

    @staticmethod
    def _answer(call: Any, **kwargs: Any) -> bool:
        try:
            call(**kwargs)
        except ClientError as exc:
            if token_gone(exc):
                return False
            raise
        return True
