"""Compiling a workflow definition into Amazon States Language."""

from __future__ import annotations

import json
import random
import re
import textwrap
from collections.abc import Iterator
from typing import Any

import pytest

from flowdeck.constants import DEFAULT_STEP_TIMEOUT_SECONDS
from flowdeck.definition import WorkflowDefinition, parse_workflow
from statemachines import compile_workflow, render_definition
from statemachines.asl import intrinsic_string
from statemachines.run_record import EXECUTION_INPUT_DEFAULTS
from statemachines.run_step import TIMEOUT_MARGIN_SECONDS

SEND_AND_WAIT = "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
UPDATE_ITEM = "arn:aws:states:::dynamodb:updateItem"
RUN_RECORDERS = {"RecordRunStart", "RecordRunSucceeded", "RecordRunFailed"}
LOST_ERRORS = ["States.HeartbeatTimeout", "States.Timeout"]
RUN_ENDS = {"RunFailed", "RunNotRunning"}

State = dict[str, Any]


def definition_of(text: str) -> WorkflowDefinition:
    return parse_workflow(textwrap.dedent(text).lstrip("\n"), "wf.yaml")


def compiled(text: str) -> dict[str, Any]:
    return compile_workflow(definition_of(text))


def all_states(asl: dict[str, Any]) -> Iterator[tuple[str, State, dict[str, State]]]:
    """(name, state, the States map it lives in) for every state, inside Parallel branches too."""
    for name, state in asl["States"].items():
        yield name, state, asl["States"]
        for branch in state.get("Branches", []):
            yield from all_states(branch)


def step_tasks(asl: dict[str, Any]) -> dict[str, State]:
    return {name: state for name, state, _ in all_states(asl) if state.get("Resource") == SEND_AND_WAIT}


def scope_of(asl: dict[str, Any], name: str) -> dict[str, State]:
    return next(scope for n, _, scope in all_states(asl) if n == name)


def catcher(task: State, errors: list[str]) -> dict[str, Any]:
    return next(c for c in task["Catch"] if c["ErrorEquals"] == errors)


def lost_recorder(asl: dict[str, Any], step_id: str) -> tuple[str, State]:
    """The state a step's task goes to when its worker stops answering (heartbeat or backstop timeout)."""
    scope = scope_of(asl, step_id)
    name = catcher(scope[step_id], LOST_ERRORS)["Next"]
    return name, scope[name]


def prelude(asl: dict[str, Any]) -> list[str]:
    """The states from StartAt up to RecordRunStart."""
    names = [asl["StartAt"]]
    while names[-1] != "RecordRunStart":
        names.append(asl["States"][names[-1]]["Next"])
        assert len(names) < 5, names
    return names


# A tiny interpreter for the JSONPath and intrinsic functions the compiler uses, to check what the
# worker's message really holds rather than how the expression is spelled.


def _split_args(text: str) -> list[str]:
    args, depth, quoted, current, index = [], 0, False, "", 0
    while index < len(text):
        ch = text[index]
        if quoted and ch == "\\":
            current += text[index : index + 2]
            index += 2
            continue
        if ch == "'":
            quoted = not quoted
        elif not quoted and ch == "(":
            depth += 1
        elif not quoted and ch == ")":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            args.append(current.strip())
            current = ""
            index += 1
            continue
        current += ch
        index += 1
    return [*args, current.strip()]


def evaluate(expression: str, data: Any) -> Any:
    expression = expression.strip()
    if expression == "$":
        return data
    if expression.startswith("$."):
        for part in expression[2:].split("."):
            data = data[part]
        return data
    if expression.startswith("'"):
        return unquote_intrinsic(expression)
    if expression in {"true", "false"}:
        return expression == "true"
    match = re.fullmatch(r"(States\.\w+)\((.*)\)", expression, re.S)
    assert match, expression
    args = [evaluate(arg, data) for arg in _split_args(match.group(2))]
    function = match.group(1)
    if function == "States.JsonMerge":
        assert args[2] is False
        return {**args[0], **args[1]}
    if function == "States.JsonToString":
        return json.dumps(args[0])
    if function == "States.StringToJson":
        return json.loads(args[0])
    raise AssertionError(f"unexpected intrinsic {function}")


def apply_parameters(parameters: Any, data: Any) -> Any:
    if isinstance(parameters, dict):
        return {
            key.removesuffix(".$"): (
                evaluate(value, data) if key.endswith(".$") else apply_parameters(value, data)
            )
            for key, value in parameters.items()
        }
    return parameters


def state_at_record_run_start(asl: dict[str, Any], execution_input: dict[str, Any]) -> Any:
    """Run the Pass states before RecordRunStart on an execution input."""
    data: Any = execution_input
    for name in prelude(asl)[:-1]:
        state = asl["States"][name]
        assert state["Type"] == "Pass"
        data = apply_parameters(state["Parameters"], data)
    return data


def unquote_intrinsic(literal: str) -> str:
    """Inverse of intrinsic_string: the text inside '...', with \\-escapes undone."""
    assert literal[0] == literal[-1] == "'"
    return re.sub(r"\\(.)", r"\1", literal[1:-1])


SEQUENTIAL = """
name: build
description: Compile and test
runtime_config: {heartbeat_seconds: 45}
steps:
  - id: compile
    run: make
    timeout: 10m
    retries: {max: 3, interval: 10s, backoff: 1.5}
    env: {CC: gcc, JOBS: 4}
    resources: {cpu: 1024, memory: 4096}
    artifacts: {upload: ["bin/*"]}
  - id: test
    command: [make, test]
    on_failure: continue
  - id: report
    if: "steps.test.outputs.passed == 'yes'"
    notify: {slack: "#ci", message: "Built {{ run.id }}"}
"""

FAN_OUT = """
name: fan
inputs:
  environment: {type: string, default: "it's {prod}"}
  replicas: {type: integer, default: 2}
  ticket: {type: string}
steps:
  - id: prepare
    run: echo
  - id: web
    needs: [prepare]
    run: echo
  - id: api
    needs: [prepare]
    run: echo
    on_failure: continue
  - id: worker
    needs: [prepare]
    run: echo
  - id: publish
    needs: [web, api, worker]
    run: echo
"""


@pytest.fixture(scope="module")
def sequential() -> dict[str, Any]:
    return compiled(SEQUENTIAL)


@pytest.fixture(scope="module")
def fan_out() -> dict[str, Any]:
    return compiled(FAN_OUT)


def parallel_after(asl: dict[str, Any], step_id: str) -> State:
    block = asl["States"][asl["States"][step_id]["Next"]]
    assert block["Type"] == "Parallel"
    return block


# -- the document ---------------------------------------------------------------------------------


def test_asl_round_trips_through_json(sequential, fan_out):
    for asl in (sequential, fan_out):
        assert json.loads(json.dumps(asl)) == asl


def test_asl_starts_at_normalize_and_names_the_workflow(sequential):
    assert sequential["StartAt"] == "Normalize"
    assert sequential["Comment"] == "Flowdeck workflow build: Compile and test"


def test_sequential_workflow_has_one_task_per_step_plus_the_recorders(sequential):
    states = sequential["States"]
    assert sorted(step_tasks(sequential)) == ["compile", "report", "test"]
    assert RUN_RECORDERS | {"Normalize", "RunFailed"} <= set(states)
    assert states["RunFailed"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    lost = {}
    for step_id in ("compile", "test", "report"):
        name, recorder = lost_recorder(sequential, step_id)
        assert recorder["Resource"] == UPDATE_ITEM
        lost[name] = recorder
    assert len(lost) == 3
    # Anything else is the input prelude or where a lost worker's record ends (a Fail state).
    ends = {recorder["Next"] for recorder in lost.values()} - {"report"}  # test continues to report
    others = set(states) - RUN_RECORDERS - RUN_ENDS - {"compile", "test", "report"} - set(lost)
    assert others <= set(prelude(sequential)) | ends
    assert all(states[name]["Type"] in {"Pass", "Fail"} for name in others)


def test_sequential_workflow_runs_its_steps_in_order(sequential):
    states = sequential["States"]
    assert prelude(sequential)[0] == "Normalize"
    assert states["RecordRunStart"]["Next"] == "compile"
    assert states["compile"]["Next"] == "test"
    assert states["test"]["Next"] == "report"
    assert states["report"]["Next"] == "RecordRunSucceeded"
    assert states["RecordRunSucceeded"]["End"] is True
    assert states["RecordRunFailed"]["Next"] == "RunFailed"


@pytest.mark.parametrize(
    ("execution_input", "meta"),
    [
        ({}, EXECUTION_INPUT_DEFAULTS),
        (
            {"inputs": {"ticket": "T-1"}, "trigger": "schedule", "started_by": "scheduler"},
            {
                "inputs": {"ticket": "T-1"},
                "trigger": "schedule",
                "started_by": "scheduler",
                "reuse": [],
                "trigger_detail": "",
            },
        ),
        (
            {"inputs": {"replicas": 5}},
            {
                "inputs": {"replicas": 5},
                "trigger": "manual",
                "started_by": "aws-console",
                "reuse": [],
                "trigger_detail": "",
            },
        ),
        (
            {"trigger": "retry", "started_by": "ann", "reuse": ["plan"]},
            {"inputs": {}, "trigger": "retry", "started_by": "ann", "reuse": ["plan"], "trigger_detail": ""},
        ),
        (
            {"trigger": "git", "started_by": "octocat", "trigger_detail": "main @ abc1234"},
            {
                "inputs": {},
                "trigger": "git",
                "started_by": "octocat",
                "reuse": [],
                "trigger_detail": "main @ abc1234",
            },
        ),
    ],
)
def test_prelude_fills_what_a_console_start_may_omit(fan_out, execution_input, meta):
    assert state_at_record_run_start(fan_out, execution_input)["meta"] == meta
    assert EXECUTION_INPUT_DEFAULTS == {
        "inputs": {},
        "trigger": "manual",
        "started_by": "aws-console",
        "reuse": [],
        "trigger_detail": "",
    }


def test_every_step_message_carries_the_steps_a_retry_reuses(fan_out):
    for task in step_tasks(fan_out).values():
        assert task["Parameters"]["MessageBody"]["reuse.$"] == "$.meta.reuse"


def test_run_start_records_the_plan_in_definition_order(sequential):
    params = sequential["States"]["RecordRunStart"]["Parameters"]
    values = params["ExpressionAttributeValues"]
    # The run item lists its steps once, in order with their kinds; step state lives in STEP#<id> items.
    assert values[":plan"] == {
        "L": [
            {"M": {"id": {"S": "compile"}, "kind": {"S": "run"}}},
            {"M": {"id": {"S": "test"}, "kind": {"S": "run"}}},
            {"M": {"id": {"S": "report"}, "kind": {"S": "notify"}}},
        ]
    }
    assert "#plan = if_not_exists(#plan, :plan)" in params["UpdateExpression"]
    assert params["ExpressionAttributeNames"]["#plan"] == "plan"
    assert "steps" not in params["ExpressionAttributeNames"].values()
    assert params["Key"] == {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": "RUN"}}
    assert values[":workflow"] == {"S": "build"}
    assert values[":running"] == {"S": "running"}
    assert values[":trigger"] == {"S.$": "$.meta.trigger"}
    assert values[":started_by"] == {"S.$": "$.meta.started_by"}
    # Recorded once: a queued run's record (written when it was queued) keeps its own.
    assert "#trigger_detail = if_not_exists(#trigger_detail, :trigger_detail)" in params["UpdateExpression"]
    assert values[":trigger_detail"] == {"S.$": "$.meta.trigger_detail"}
    assert_expression_placeholders_all_used("RecordRunStart", params)


def test_every_state_leads_somewhere_that_exists(sequential, fan_out):
    for asl in (sequential, fan_out):
        for name, state, scope in all_states(asl):
            targets = [state["Next"]] if "Next" in state else []
            targets += [c["Next"] for c in state.get("Catch", [])]
            assert all(target in scope for target in targets), f"{name} -> {targets}"
            if state["Type"] not in {"Fail", "Succeed"}:
                assert ("Next" in state) != bool(state.get("End")), (
                    f"{name} needs exactly one of Next and End"
                )
            for branch in state.get("Branches", []):
                assert branch["StartAt"] in branch["States"]


def test_state_names_are_unique_across_the_whole_machine(fan_out):
    names = [name for name, _, _ in all_states(fan_out)]
    assert len(names) == len(set(names))


def test_state_names_fit_the_asl_limit_of_80_characters():
    long_ids = ["build-frontend", "build-backend", "run-unit-tests", "lint-and-typecheck", "x" * 64]
    asl = compiled(
        "name: ci\nsteps:\n" + "".join(f"  - {{id: {i}, needs: [], run: echo}}\n" for i in long_ids)
    )
    names = [name for name, _, _ in all_states(asl)]
    assert [name for name in names if len(name) > 80] == []
    assert len(names) == len(set(names))


# -- step tasks -----------------------------------------------------------------------------------


def test_step_task_sends_to_the_queue_and_waits_for_its_token(sequential):
    task = sequential["States"]["compile"]
    assert task["Type"] == "Task"
    assert task["Resource"] == SEND_AND_WAIT
    assert task["Parameters"]["QueueUrl"] == "${StepsQueueUrl}"
    body = task["Parameters"]["MessageBody"]
    assert body["token.$"] == "$$.Task.Token"
    assert body["run_id.$"] == "$$.Execution.Name"
    assert body["workflow"] == "build"
    assert body["step"] == "compile"
    assert body["retry_count.$"] == "$$.State.RetryCount"


def test_step_task_heartbeat_and_timeout(sequential):
    for task in step_tasks(sequential).values():
        assert task["HeartbeatSeconds"] == 45
    assert sequential["States"]["compile"]["TimeoutSeconds"] == 600 + TIMEOUT_MARGIN_SECONDS > 600
    assert sequential["States"]["test"]["TimeoutSeconds"] > DEFAULT_STEP_TIMEOUT_SECONDS


def test_step_result_is_kept_out_of_the_state(sequential):
    # Outputs live in the runs table; the state must not grow with them (256 KiB limit).
    for task in step_tasks(sequential).values():
        assert task["ResultPath"] is None


def test_default_heartbeat_is_thirty_seconds():
    assert compiled("name: x\nsteps: [{id: a, run: echo}]\n")["States"]["a"]["HeartbeatSeconds"] == 30


def test_heartbeat_stays_below_the_task_timeout():
    asl = compiled(
        """
        name: quick
        runtime_config: {heartbeat_seconds: 300}
        steps:
          - id: ping
            run: echo
            timeout: 30s
        """
    )
    task = asl["States"]["ping"]
    assert task["TimeoutSeconds"] > 30
    assert task["HeartbeatSeconds"] < task["TimeoutSeconds"]


def test_step_spec_carries_what_the_worker_needs(sequential):
    spec = sequential["States"]["compile"]["Parameters"]["MessageBody"]["spec"]
    assert spec == {
        "kind": "run",
        "run": "make",
        "env": {"CC": "gcc", "JOBS": "4"},
        "timeout": 600,
        "max_attempts": 4,
        "on_failure": "fail",
        "resources": {"cpu": 1024, "memory": 4096},
        "artifacts": {"upload": ["bin/*"], "download": []},
    }
    test_spec = sequential["States"]["test"]["Parameters"]["MessageBody"]["spec"]
    assert test_spec["command"] == ["make", "test"]
    assert "run" not in test_spec
    assert "artifacts" not in test_spec
    assert test_spec["timeout"] == DEFAULT_STEP_TIMEOUT_SECONDS
    assert test_spec["max_attempts"] == 1
    assert test_spec["on_failure"] == "continue"
    report_spec = sequential["States"]["report"]["Parameters"]["MessageBody"]["spec"]
    assert report_spec["kind"] == "notify"
    assert report_spec["if"] == "steps.test.outputs.passed == 'yes'"
    assert report_spec["notify"] == {"slack": "#ci", "email": [], "message": "Built {{ run.id }}"}


HAND_BACK_RETRIER = {"ErrorEquals": ["WorkerStopped"], "IntervalSeconds": 1, "MaxAttempts": 2}


def test_retry_matches_the_step_retries_after_the_hand_back_retrier(sequential):
    assert sequential["States"]["compile"]["Retry"] == [
        HAND_BACK_RETRIER,
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 10, "MaxAttempts": 3, "BackoffRate": 1.5},
    ]


def test_without_retries_only_a_step_handed_back_by_a_stopping_worker_runs_again(sequential):
    assert sequential["States"]["test"]["Retry"] == [HAND_BACK_RETRIER]
    assert sequential["States"]["report"]["Retry"] == [HAND_BACK_RETRIER]


def test_zero_second_retry_interval_becomes_the_asl_minimum():
    asl = compiled("name: x\nsteps: [{id: a, run: echo, retries: {max: 1, interval: 0}}]\n")
    assert asl["States"]["a"]["Retry"][1]["IntervalSeconds"] == 1


# -- failures -------------------------------------------------------------------------------------


def test_failing_step_by_default_records_the_run_failure(sequential):
    task = sequential["States"]["compile"]
    assert task["Catch"][-1] == {
        "ErrorEquals": ["States.ALL"],
        "ResultPath": "$.error",
        "Next": "RecordRunFailed",
    }
    assert [c["ErrorEquals"] for c in task["Catch"]] == [LOST_ERRORS, ["States.ALL"]]


def assert_records_the_step_lost(recorder: State, step_id: str) -> None:
    """The recorder updates the STEP#<id> item only: failed, WorkerLost, and token "lost"."""
    assert recorder["Type"] == "Task"
    assert recorder["Resource"] == UPDATE_ITEM
    assert recorder["ResultPath"] is None
    params = recorder["Parameters"]
    assert params["TableName"] == "${RunsTableName}"
    assert params["Key"] == {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": f"STEP#{step_id}"}}
    assert params["UpdateExpression"] == (
        "SET #step = :step, #status = :failed, #error = :error, #cause = :cause, "
        "#ended_at = :now, #token = :lost"
    )
    assert "ConditionExpression" not in params
    assert params["ExpressionAttributeNames"] == {
        "#step": "step",
        "#status": "status",
        "#error": "error",
        "#cause": "cause",
        "#ended_at": "ended_at",
        "#token": "token",
    }
    assert params["ExpressionAttributeValues"] == {
        ":step": {"S": step_id},
        ":failed": {"S": "failed"},
        ":error": {"S": "WorkerLost"},
        ":cause": {"S": lost_cause(step_id)},
        ":now": {"S.$": "$$.State.EnteredTime"},
        ":lost": {"S": "lost"},
    }
    assert_expression_placeholders_all_used(step_id, params)


def lost_cause(step_id: str) -> str:
    return f"the worker running step {step_id} stopped answering (no heartbeat or no result in time)"


def test_every_step_has_one_lost_worker_catcher_first(sequential, fan_out):
    for asl in (sequential, fan_out):
        for step_id, task in step_tasks(asl).items():
            lost = [c for c in task["Catch"] if c["ErrorEquals"] == LOST_ERRORS]
            assert len(lost) == 1, step_id
            assert task["Catch"][0] is lost[0], step_id
            assert lost[0]["Next"] == f"{step_id}:WorkerLost"
            # Anything else a live worker reported itself: at most one catch-all after it.
            assert [c["ErrorEquals"] for c in task["Catch"][1:]] in ([], [["States.ALL"]]), step_id


def test_lost_worker_recorder_fails_the_step_and_the_run(sequential):
    name, recorder = lost_recorder(sequential, "compile")
    assert name == "compile:WorkerLost"
    assert catcher(sequential["States"]["compile"], LOST_ERRORS)["ResultPath"] == "$.error"
    assert_records_the_step_lost(recorder, "compile")
    # Then the error is named for the run's failure record, which reads $.error.
    assert recorder["Next"] == "compile:WorkerLost?"
    assert sequential["States"]["compile:WorkerLost?"] == {
        "Type": "Pass",
        "Result": {"Error": "WorkerLost", "Cause": lost_cause("compile")},
        "ResultPath": "$.error",
        "Next": "RecordRunFailed",
    }


def test_run_failure_record_keeps_the_error_name_and_the_whole_error_as_json(sequential):
    params = sequential["States"]["RecordRunFailed"]["Parameters"]
    assert params["Key"] == {"pk": {"S.$": "$$.Execution.Name"}, "sk": {"S": "RUN"}}
    names, values = params["ExpressionAttributeNames"], params["ExpressionAttributeValues"]
    assert (names["#error"], names["#cause"]) == ("error", "error_json")
    assert "#error = :error" in params["UpdateExpression"]
    assert "#cause = :cause" in params["UpdateExpression"]
    # As the lost-worker path leaves it, and as a worker's failure may (moto drops the cause: null).
    for error in (
        sequential["States"]["compile:WorkerLost?"]["Result"],
        {"Error": "StepFailed", "Cause": None},
    ):
        state = {"meta": {}, "error": error}
        recorded = apply_parameters({":error": values[":error"], ":cause": values[":cause"]}, state)
        assert recorded[":error"] == {"S": error["Error"]}
        assert json.loads(recorded[":cause"]["S"]) == error


@pytest.mark.parametrize("recorder", ["RecordRunSucceeded", "RecordRunFailed"])
def test_run_end_is_recorded_only_while_the_run_is_running(sequential, recorder):
    state = sequential["States"][recorder]
    params = state["Parameters"]
    # A cancel (a person's or the budget guard's) may be under way or done: the state machine must
    # not record the run's end over it (the cancel records cancelled once its last process ended).
    assert params["ConditionExpression"] == "#status = :running AND attribute_not_exists(#cancel)"
    assert params["ExpressionAttributeNames"]["#status"] == "status"
    assert params["ExpressionAttributeNames"]["#cancel"] == "cancel_requested_at"
    assert params["ExpressionAttributeValues"][":running"] == {"S": "running"}
    assert state["Catch"] == [
        {
            "ErrorEquals": ["DynamoDB.ConditionalCheckFailedException"],
            "ResultPath": None,
            "Next": "RunNotRunning",
        }
    ]
    assert_expression_placeholders_all_used(recorder, params)


def test_run_that_already_ended_ends_the_execution_without_a_record(sequential):
    states = sequential["States"]
    assert states["RunNotRunning"] == {
        "Type": "Fail",
        "Error": "RunAlreadyEnded",
        "Cause": (
            "the run had already ended (cancelled, or its start failed) "
            "when this execution tried to record it"
        ),
    }
    # Only the start and the two final recorders lead there; nothing else writes the run's final status.
    leading = {
        name
        for name, state, _ in all_states(sequential)
        if any(c["Next"] == "RunNotRunning" for c in state.get("Catch", []))
    }
    assert leading == {"RecordRunStart", "RecordRunSucceeded", "RecordRunFailed"}
    assert states["RecordRunFailed"]["Next"] == "RunFailed"
    assert states["RecordRunSucceeded"]["End"] is True


def test_max_cost_usd_travels_in_every_step_message_as_a_string():
    asl = compiled(
        """
        name: budgeted
        runtime_config: {max_cost_usd: 0.01}
        steps:
          - {id: a, run: echo}
          - {id: b, needs: [], run: echo}
          - {id: c, needs: [a, b], run: echo}
        """
    )
    bodies = [task["Parameters"]["MessageBody"] for task in step_tasks(asl).values()]
    assert len(bodies) == 3
    assert all(body["max_cost_usd"] == "0.01" for body in bodies)


def test_no_max_cost_usd_in_the_step_message_without_a_budget(sequential, fan_out):
    for asl in (sequential, fan_out):
        for task in step_tasks(asl).values():
            assert "max_cost_usd" not in task["Parameters"]["MessageBody"]


def test_on_failure_continue_catches_to_the_next_state(sequential):
    task = sequential["States"]["test"]
    assert task["Catch"][-1]["ErrorEquals"] == ["States.ALL"]
    assert task["Catch"][-1]["Next"] == "report"
    assert all(c["ResultPath"] is None for c in task["Catch"])
    name, recorder = lost_recorder(sequential, "test")
    assert name == "test:WorkerLost"
    # The step is recorded failed (its own item); the run goes on, so nothing names a run error.
    assert_records_the_step_lost(recorder, "test")
    assert recorder["Next"] == "report"
    assert not {"test:WorkerLost?", "test:WorkerLost!"} & set(sequential["States"])


def test_last_step_that_continues_catches_to_run_succeeded():
    asl = compiled("name: x\nsteps: [{id: a, run: echo}, {id: b, run: echo, on_failure: continue}]\n")
    assert asl["States"]["b"]["Catch"][-1]["Next"] == "RecordRunSucceeded"
    assert lost_recorder(asl, "b")[1]["Next"] == "RecordRunSucceeded"


def update_items(asl: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state, _ in all_states(asl):
        if state.get("Resource") == UPDATE_ITEM:
            yield name, state["Parameters"]


def assert_expression_placeholders_all_used(name: str, params: dict[str, Any]) -> None:
    # DynamoDB refuses an update whose ExpressionAttributeNames/Values hold a placeholder no expression uses.
    text = params["UpdateExpression"] + " " + params.get("ConditionExpression", "")
    used = set(re.findall(r"[#:][A-Za-z0-9_]+", text))
    assert set(params["ExpressionAttributeNames"]) <= used, name
    assert set(params["ExpressionAttributeValues"]) <= used, name
    assert used <= set(params["ExpressionAttributeNames"]) | set(params["ExpressionAttributeValues"]), name


def test_run_record_updates_use_every_placeholder_they_declare(sequential):
    checked = 0
    for name, params in update_items(sequential):
        assert_expression_placeholders_all_used(name, params)
        checked += 1
    assert checked == 3 + 3  # the run's three recorders, one lost-worker recorder per step


def test_lost_worker_recorder_of_a_continuing_step_uses_every_placeholder(sequential):
    name, recorder = lost_recorder(sequential, "test")
    assert_expression_placeholders_all_used(name, recorder["Parameters"])


# -- parallel steps -------------------------------------------------------------------------------


def test_parallel_steps_compile_to_a_parallel_state(fan_out):
    block = parallel_after(fan_out, "prepare")
    assert block["Next"] == "publish"
    assert [b["StartAt"] for b in block["Branches"]] == ["web", "api", "worker"]
    for branch in block["Branches"]:
        assert branch["States"][branch["StartAt"]]["End"] is True
    assert fan_out["States"]["publish"]["Next"] == "RecordRunSucceeded"
    assert sorted(step_tasks(fan_out)) == ["api", "prepare", "publish", "web", "worker"]


def test_parallel_state_passes_its_input_on(fan_out):
    # Steps publish outputs to the runs table, so branch results are dropped and meta stays for later steps.
    block = parallel_after(fan_out, "prepare")
    assert block["ResultPath"] is None
    assert "ResultSelector" not in block and "OutputPath" not in block


def test_two_independent_steps_form_one_parallel_at_the_start():
    asl = compiled("name: x\nsteps: [{id: a, run: echo}, {id: b, needs: [], run: echo}]\n")
    block = asl["States"][asl["States"]["RecordRunStart"]["Next"]]
    assert block["Type"] == "Parallel"
    assert [b["StartAt"] for b in block["Branches"]] == ["a", "b"]
    assert block["Next"] == "RecordRunSucceeded"


def test_top_level_parallel_failure_records_the_run_failure(fan_out):
    block = parallel_after(fan_out, "prepare")
    assert block["Catch"] == [
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordRunFailed"}
    ]


def test_failing_step_in_a_branch_fails_the_branch(fan_out):
    web = parallel_after(fan_out, "prepare")["Branches"][0]["States"]
    # No catch-all inside the branch: the error leaves it for the Parallel's Catch.
    assert all(c["ErrorEquals"] != ["States.ALL"] for c in web["web"]["Catch"])
    name, recorder = lost_recorder(fan_out, "web")
    assert (name, catcher(web["web"], LOST_ERRORS)["ResultPath"]) == ("web:WorkerLost", "$.error")
    assert_records_the_step_lost(recorder, "web")
    # Leaves the branch with the error; the top-level Parallel's Catch records the run's failure.
    assert recorder["Next"] == "web:WorkerLost!"
    assert web["web:WorkerLost!"] == {"Type": "Fail", "Error": "WorkerLost", "Cause": lost_cause("web")}


def test_continuing_step_at_the_end_of_a_branch_ends_the_branch(fan_out):
    api = parallel_after(fan_out, "prepare")["Branches"][1]["States"]
    end = api[api["api"]["Catch"][-1]["Next"]]
    assert api["api"]["Catch"][-1]["ErrorEquals"] == ["States.ALL"]
    assert end == {"Type": "Pass", "End": True}
    assert api[lost_recorder(fan_out, "api")[1]["Next"]] == end


def test_nested_parallel_has_no_catch_of_its_own():
    asl = compiled(
        """
        name: nest
        steps:
          - id: a
            run: echo
          - id: b
            needs: [a]
            run: echo
          - id: c
            needs: [a]
            run: echo
          - id: d
            needs: [b, c]
            run: echo
          - id: x
            needs: []
            run: echo
        """
    )
    outer = asl["States"][asl["States"]["RecordRunStart"]["Next"]]
    assert outer["Type"] == "Parallel"
    assert [b["StartAt"] for b in outer["Branches"]] == ["a", "x"]
    first = outer["Branches"][0]["States"]
    inner = first[first["a"]["Next"]]
    assert inner["Type"] == "Parallel"
    assert [b["StartAt"] for b in inner["Branches"]] == ["b", "c"]
    assert inner["Next"] == "d"
    assert "Catch" not in inner
    assert "Catch" in outer


def random_workflow(rng: random.Random) -> tuple[str, int]:
    size = rng.randint(1, 8)
    lines = ["name: random", "steps:"]
    for i in range(size):
        needs = json.dumps([f"s{j}" for j in range(i) if rng.random() < 0.4])
        failure = rng.choice(["fail", "continue"])
        lines.append(f"  - {{id: s{i}, needs: {needs}, run: echo, on_failure: {failure}}}")
    return "\n".join(lines) + "\n", size


def test_random_dags_compile_to_one_task_per_step_with_valid_transitions():
    rng = random.Random(99)  # noqa: S311 - seeded on purpose: the same DAGs every run
    for _ in range(100):
        text, size = random_workflow(rng)
        asl = compiled(text)
        tasks = [name for name, state, _ in all_states(asl) if state.get("Resource") == SEND_AND_WAIT]
        assert sorted(tasks) == sorted(f"s{i}" for i in range(size)), text
        names = [name for name, _, _ in all_states(asl)]
        assert len(names) == len(set(names)), text
        for name, state, scope in all_states(asl):
            targets = [state.get("Next")] + [c["Next"] for c in state.get("Catch", [])]
            assert all(t is None or t in scope for t in targets), (name, text)


# -- inputs, placeholders, escaping ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ({}, {"environment": "it's {prod}", "replicas": 2}),
        ({"replicas": 5, "ticket": "T-1"}, {"environment": "it's {prod}", "replicas": 5, "ticket": "T-1"}),
    ],
)
def test_input_defaults_are_merged_into_the_message(fan_out, given, expected):
    data = state_at_record_run_start(fan_out, {"inputs": given})
    expression = fan_out["States"]["prepare"]["Parameters"]["MessageBody"]["inputs.$"]
    assert expression.startswith("States.JsonMerge(")
    assert evaluate(expression, data) == expected
    recorded = fan_out["States"]["RecordRunStart"]["Parameters"]["ExpressionAttributeValues"][":inputs"][
        "S.$"
    ]
    assert json.loads(evaluate(recorded, data)) == expected


def test_workflow_without_inputs_sends_the_given_inputs(sequential):
    data = state_at_record_run_start(sequential, {"inputs": {"x": 1}})
    expression = sequential["States"]["compile"]["Parameters"]["MessageBody"]["inputs.$"]
    assert evaluate(expression, data) == {"x": 1}


def test_placeholders_are_left_for_substitution(sequential):
    tables = {params["TableName"] for _, params in update_items(sequential)}
    queues = {task["Parameters"]["QueueUrl"] for task in step_tasks(sequential).values()}
    assert tables == {"${RunsTableName}"}
    assert queues == {"${StepsQueueUrl}"}


def test_render_definition_substitutes_the_placeholders(fan_out):
    queue = "https://sqs.us-east-1.amazonaws.com/123456789012/flowdeck-steps"
    text = render_definition(fan_out, {"RunsTableName": "flowdeck-runs", "StepsQueueUrl": queue})
    assert "${" not in text
    rendered = json.loads(text)
    assert rendered["States"]["RecordRunStart"]["Parameters"]["TableName"] == "flowdeck-runs"
    branch = parallel_after(rendered, "prepare")["Branches"][0]["States"]
    assert branch["web"]["Parameters"]["QueueUrl"] == queue


def test_render_definition_leaves_unknown_placeholders_alone(sequential):
    text = render_definition(sequential, {"RunsTableName": "t"})
    assert "${StepsQueueUrl}" in text
    assert "${RunsTableName}" not in text


@pytest.mark.parametrize(
    ("text", "literal"),
    [
        ("plain", "'plain'"),
        ("it's", "'it\\'s'"),
        ("{a}", "'\\{a\\}'"),
        ("back\\slash", "'back\\\\slash'"),
        ('{"k":"it\'s \\n"}', '\'\\{"k":"it\\\'s \\\\n"\\}\''),
        ("", "''"),
    ],
)
def test_intrinsic_string_escapes_quote_braces_and_backslash(text, literal):
    assert intrinsic_string(text) == literal
    assert unquote_intrinsic(literal) == text
    assert evaluate(f"States.StringToJson({intrinsic_string(json.dumps(text))})", {}) == text
