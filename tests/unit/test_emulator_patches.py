"""The emulator's fixes to moto's Step Functions executor (flowdeck.local.emulator)."""

from __future__ import annotations

from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackOutcomeSuccess

from flowdeck.local.emulator import _keep_early_task_answers


def test_an_answer_sent_before_the_task_waits_is_not_lost() -> None:
    _keep_early_task_answers()
    endpoint = CallbackEndpoint(callback_id="token")
    # The worker answers between the message being sent and the heartbeat endpoint being set up.
    endpoint.notify(CallbackOutcomeSuccess(callback_id="token", output="{}"))

    heartbeat = endpoint.setup_heartbeat_endpoint(heartbeat_seconds=1)

    # Unpatched, the first wait times out (False) and the executor reports a heartbeat timeout.
    assert heartbeat.clear_and_wait() is True
    assert endpoint.get_outcome() is not None
