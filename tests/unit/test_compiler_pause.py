"""Compiling `on_failure: pause`: Paused (a waiting token), Decision (retry/skip) and the deadline."""

from __future__ import annotations

from typing import Any

import pytest

from tests.unit.test_compiler import (
    LOST_ERRORS,
    SEND_AND_WAIT,
    all_states,
    apply_parameters,
    assert_expression_placeholders_all_used,
    catcher,
    compiled,
    scope_of,
    state_at_record_run_start,
)

PAUSING = """
name: deploy
steps:
  - id: plan
    run: echo
  - id: apply
    run: echo
    on_failure: pause
    allow_skip: true
    pause_timeout: 2h
    retries: {max: 2, interval: 5s}
  - id: notify
    notify: {message: done}
"""

SAME_WITHOUT_PAUSE = PAUSING.replace("    on_failure: pause\n", "")

IN_A_BRANCH = """
name: fan
steps:
  - id: prepare
    run: echo
  - id: left
    needs: [prepare]
    run: echo
    on_failure: pause
  - id: right
    needs: [prepare]
    run: echo
  - id: join
    needs: [left, right]
    run: echo
"""


@pytest.fixture(scope="module")
def pausing() -> dict[str, Any]:
    return compiled(PAUSING)


@pytest.fixture(scope="module")
def branch() -> dict[str, Any]:
    return compiled(IN_A_BRANCH)


def test_failure_after_the_automatic_retries_goes_to_the_paused_state(pausing):
    task = pausing["States"]["apply"]

    assert task["Retry"][1]["MaxAttempts"] == 2
    assert [c["ErrorEquals"] for c in task["Catch"]] == [
        LOST_ERRORS,
        ["BudgetExceeded", "Cancelled"],
        ["States.ALL"],
    ]
    assert catcher(task, ["States.ALL"]) == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.error",
        "Next": "apply:Paused",
    }
    # A cancelled run (budget guard, cancel) never pauses: it fails as before.
    assert catcher(task, ["BudgetExceeded", "Cancelled"])["Next"] == "RecordRunFailed"


def test_lost_worker_is_recorded_and_then_pauses_the_step(pausing):
    lost = catcher(pausing["States"]["apply"], LOST_ERRORS)
    assert lost["ResultPath"] == "$.error"
    assert pausing["States"][lost["Next"]]["Next"] == "apply:Paused"


def test_paused_state_is_a_token_on_the_steps_queue_without_heartbeat_until_the_deadline(pausing):
    paused = pausing["States"]["apply:Paused"]
    body = paused["Parameters"]["MessageBody"]

    assert paused["Resource"] == SEND_AND_WAIT
    assert paused["Parameters"]["QueueUrl"] == pausing["States"]["apply"]["Parameters"]["QueueUrl"]
    assert body == {
        "type": "wait",
        "reason": "paused",
        "token.$": "$$.Task.Token",
        "run_id.$": "$$.Execution.Name",
        "workflow": "deploy",
        "step": "apply",
        "entered_at.$": "$$.State.EnteredTime",
        "timeout_seconds": 7200,
        "allow_skip": True,
    }
    assert "HeartbeatSeconds" not in paused
    assert paused["TimeoutSeconds"] == 7200
    assert paused["ResultPath"] == "$.pauses.p1"
    assert paused["Next"] == "apply:Decision"


def test_decision_retry_runs_the_step_again_and_skip_goes_on(pausing):
    choice = pausing["States"]["apply:Decision"]

    assert choice["Type"] == "Choice"
    assert [(c["Variable"], c["StringEquals"], c["Next"]) for c in choice["Choices"]] == [
        ("$.pauses.p1.decision", "retry", "apply"),
        ("$.pauses.p1.decision", "skip", "notify"),
    ]
    assert choice["Default"] == "RecordRunFailed"


def test_pause_deadline_records_the_step_failed_and_fails_the_run(pausing):
    paused = pausing["States"]["apply:Paused"]
    timed_out = catcher(paused, ["States.Timeout"])
    recorder = pausing["States"][timed_out["Next"]]
    params = recorder["Parameters"]

    assert [c["ErrorEquals"] for c in paused["Catch"]] == [["States.Timeout"], ["States.ALL"]]
    assert catcher(paused, ["States.ALL"])["Next"] == "RecordRunFailed"
    assert params["Key"]["sk"] == {"S": "STEP#apply"}
    assert params["ExpressionAttributeValues"][":error"] == {"S": "PauseTimedOut"}
    assert params["UpdateExpression"].endswith("REMOVE #wait_token")
    assert_expression_placeholders_all_used(timed_out["Next"], params)
    error = pausing["States"][recorder["Next"]]
    assert error["Result"]["Error"] == "PauseTimedOut"
    assert error["ResultPath"] == "$.error"
    assert error["Next"] == "RecordRunFailed"


def test_attempts_go_on_after_a_retry_decision(pausing):
    body = pausing["States"]["apply"]["Parameters"]["MessageBody"]
    state = state_at_record_run_start(pausing, {"inputs": {}})

    assert apply_parameters({"attempt_base.$": body["attempt_base.$"]}, state) == {"attempt_base": 0}
    # The decision's answer lands at the Paused state's ResultPath: two attempts were recorded before.
    state["pauses"]["p1"] = {"decision": "retry", "attempts": 2}
    assert apply_parameters({"attempt_base.$": body["attempt_base.$"]}, state) == {"attempt_base": 2}


def test_run_fails_from_waiting_too_when_a_step_may_pause(pausing):
    params = pausing["States"]["RecordRunFailed"]["Parameters"]

    assert params["ConditionExpression"] == (
        "#status IN (:running, :waiting) AND attribute_not_exists(#cancel)"
    )
    assert_expression_placeholders_all_used("RecordRunFailed", params)


def test_steps_without_pause_compile_exactly_as_before(pausing):
    plain = compiled(SAME_WITHOUT_PAUSE)

    for name in ("plan", "notify", "RecordRunStart", "RecordRunSucceeded"):
        assert pausing["States"][name] == plain["States"][name]
    assert "pauses" not in plain["States"]["MergeDefaults"]["Parameters"]
    assert plain["States"]["RecordRunFailed"]["Parameters"]["ConditionExpression"] == (
        "#status = :running AND attribute_not_exists(#cancel)"
    )
    assert not [name for name in plain["States"] if ":Paused" in name or ":Decision" in name]


def test_pause_in_a_parallel_branch_stays_in_its_branch(branch):
    scope = scope_of(branch, "left")
    choice = scope["left:Decision"]

    assert choice["Choices"][1]["Next"] == "left:continue"
    assert scope["left:continue"] == {"Type": "Pass", "End": True}
    failed = scope[choice["Default"]]
    assert failed == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    assert scope[catcher(scope["left:Paused"], ["States.ALL"])["Next"]] is failed
    deadline = scope[scope[catcher(scope["left:Paused"], ["States.Timeout"])["Next"]]["Next"]]
    assert deadline["Type"] == "Fail"
    assert deadline["Error"] == "PauseTimedOut"


def test_every_state_of_a_pausing_machine_leads_somewhere_that_exists(pausing, branch):
    for asl in (pausing, branch):
        for name, state, scope in all_states(asl):
            targets = [state["Next"]] if "Next" in state else []
            targets += [c["Next"] for c in state.get("Catch", [])]
            targets += [c["Next"] for c in state.get("Choices", [])]
            targets += [state["Default"]] if "Default" in state else []
            assert all(target in scope for target in targets), f"{name} -> {targets}"
        # Step Functions refuses a definition with a state nothing leads to.
        assert _reachable(asl) == {name for name, _, _ in all_states(asl)}


def _reachable(asl: dict[str, Any]) -> set[str]:
    seen: set[str] = set()
    stack = [asl["StartAt"]]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        state = asl["States"][name]
        stack += [state["Next"]] if "Next" in state else []
        stack += [c["Next"] for c in state.get("Catch", []) + state.get("Choices", [])]
        stack += [state["Default"]] if "Default" in state else []
        for sub in state.get("Branches", []):
            seen |= _reachable(sub)
    return seen
