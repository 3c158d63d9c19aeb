"""The emulator's fixes to moto's Step Functions executor (flowdeck.local.emulator)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service import (
    StateTaskService,
)
from moto.stepfunctions.parser.asl.eval.callback.callback import (
    CallbackEndpoint,
    CallbackOutcomeFailure,
    CallbackOutcomeSuccess,
    CallbackPoolManager,
)

from flowdeck.local.emulator import _answers_per_attempt


@pytest.fixture(scope="module", autouse=True)
def patched() -> None:
    _answers_per_attempt()


def test_an_answer_sent_before_the_task_waits_is_not_lost() -> None:
    endpoint = CallbackEndpoint(callback_id="token")
    # The worker answers between the message being sent and the heartbeat endpoint being set up.
    endpoint.notify(CallbackOutcomeSuccess(callback_id="token", output="{}"))

    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=1)

    # Unpatched, the first wait times out (False) and the executor reports a heartbeat timeout.
    assert heartbeat.clear_and_wait() is True
    assert endpoint.get_outcome() is not None


def test_a_retry_attempt_does_not_see_the_previous_attempts_answer() -> None:
    pool = CallbackPoolManager(activity_store={})
    endpoint = pool.add("token")
    endpoint.notify(CallbackOutcomeFailure(callback_id="token", error="StepFailed", cause=None))
    context = SimpleNamespace(context_object_data={"Task": {"Token": "token"}})
    env = SimpleNamespace(states=SimpleNamespace(context_object=context), callback_pool_manager=pool)

    # The attempt itself needs a whole executor; what matters is what it starts from.
    with pytest.raises(AttributeError):
        StateTaskService._eval_execution(SimpleNamespace(), env)

    assert endpoint.get_outcome() is None
    assert endpoint.setup_heartbeat_endpoint(heartbeat_seconds=1).clear_and_wait() is False
