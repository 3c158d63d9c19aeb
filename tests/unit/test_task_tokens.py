"""The task-token adapter: answers say whether the token was gone; other errors pass through."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from flowdeck.stores.tasks import CAUSE_LIMIT, TOKEN_GONE, TaskTokens


class FakeStepFunctions:
    """Records each call; answers with `error` (a Step Functions error code) when set."""

    def __init__(self, error: str | None = None) -> None:
        self.error = error
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def _call(self, name: str, kwargs: dict[str, Any]) -> dict[str, Any]:
        self.calls.append((name, kwargs))
        if self.error:
            raise ClientError({"Error": {"Code": self.error, "Message": "no"}}, name)
        return {}

    def send_task_success(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskSuccess", kwargs)

    def send_task_failure(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskFailure", kwargs)

    def send_task_heartbeat(self, **kwargs: Any) -> dict[str, Any]:
        return self._call("SendTaskHeartbeat", kwargs)


def test_delivered_answers_are_true_and_the_output_is_json() -> None:
    sfn = FakeStepFunctions()
    tokens = TaskTokens(sfn)

    assert tokens.succeed("t1", {"status": "reused"}) is True
    assert tokens.heartbeat("t1") is True
    assert sfn.calls == [
        ("SendTaskSuccess", {"taskToken": "t1", "output": '{"status": "reused"}'}),
        ("SendTaskHeartbeat", {"taskToken": "t1"}),
    ]


@pytest.mark.parametrize("code", sorted(TOKEN_GONE))
def test_a_gone_token_is_an_answer_not_an_error(code: str) -> None:
    tokens = TaskTokens(FakeStepFunctions(code))

    assert tokens.succeed("t1", {}) is False
    assert tokens.fail("t1", "Cancelled", "why") is False
    assert tokens.heartbeat("t1") is False


def test_other_errors_pass_through() -> None:
    with pytest.raises(ClientError, match="ThrottlingException"):
        TaskTokens(FakeStepFunctions("ThrottlingException")).fail("t1", "StepFailed")


def test_the_cause_is_cut_to_what_step_functions_takes() -> None:
    sfn = FakeStepFunctions()

    TaskTokens(sfn).fail("t1", "StepFailed", "x" * (CAUSE_LIMIT + 10))

    assert len(sfn.calls[0][1]["cause"]) == CAUSE_LIMIT == 32_768
