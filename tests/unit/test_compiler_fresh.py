"""Fresh mode: the `mode` field, and a fresh step compiled to `ecs:runTask.waitForTaskToken`."""

from __future__ import annotations

import json
from typing import Any

import pytest

from flowdeck.constants import WORKER_STOPPED, WORKER_STOPPED_RETRIES
from flowdeck.errors import InvalidDefinition
from statemachines.fresh_step import (
    COLD_START_SECONDS,
    FRESH_START_ERRORS,
    MAX_OVERRIDES_CHARS,
    REUSED_FRESH_STEPS,
    RUN_TASK_AND_WAIT,
    fresh_shapes,
    shape_of,
)
from statemachines.run_step import TIMEOUT_MARGIN_SECONDS
from tests.unit.test_compiler import (
    LOST_ERRORS,
    SEND_AND_WAIT,
    catcher,
    compiled,
    definition_of,
    lost_recorder,
)

MIXED = """
name: mixed
runtime_config: {mode: fresh, heartbeat_seconds: 20}
steps:
  - id: build
    run: make
    image: public.ecr.aws/docker/library/alpine:3.20
    resources: {cpu: 1024, memory: 2048}
    timeout: 10m
    retries: {max: 2, interval: 5s}
  - id: test
    run: make test
  - id: lint
    mode: pool
    run: make lint
  - id: report
    run: make report
    image: public.ecr.aws/docker/library/alpine:3.20
    resources: {cpu: 1024, memory: 2048}
    on_failure: pause
"""


@pytest.fixture(scope="module")
def mixed() -> dict[str, Any]:
    return compiled(MIXED)


def test_a_step_mode_overrides_the_workflow_mode():
    definition = definition_of(MIXED)
    assert [s.id for s in definition.fresh_steps()] == ["build", "test", "report"]
    pool = definition_of("name: p\nsteps:\n  - {id: a, run: echo}\n  - {id: b, run: echo, mode: fresh}\n")
    assert [s.id for s in pool.fresh_steps()] == ["b"]


def test_an_unknown_mode_is_refused_with_its_line():
    with pytest.raises(InvalidDefinition) as caught:
        definition_of("name: p\nsteps:\n  - id: a\n    run: echo\n    mode: warm\n")
    assert caught.value.problems[0].startswith("wf.yaml:5: steps[0].mode: Input should be 'pool' or 'fresh'")


def test_an_approval_step_takes_no_mode_or_image():
    text = "name: p\nsteps:\n  - id: ok\n    approval: {approvers: {any_member: true}}\n    mode: fresh\n"
    with pytest.raises(InvalidDefinition) as caught:
        definition_of(text)
    assert "an approval step runs no process: it takes no mode or image" in caught.value.problems[0]


def test_a_fresh_step_starts_a_fargate_task_and_waits_for_its_token(mixed):
    task = mixed["States"]["build"]
    assert task["Resource"] == RUN_TASK_AND_WAIT
    parameters = task["Parameters"]
    assert parameters["Cluster"] == "${FreshClusterArn}"
    assert (
        parameters["TaskDefinition"] == "${" + shape_of(definition_of(MIXED).step("build")).placeholder + "}"
    )
    assert parameters["LaunchType"] == "FARGATE"
    vpc = parameters["NetworkConfiguration"]["AwsvpcConfiguration"]
    assert vpc == {
        "Subnets.$": "States.StringSplit('${FreshSubnetIds}', ',')",
        "SecurityGroups": ["${FreshSecurityGroupId}"],
        "AssignPublicIp": "${FreshAssignPublicIp}",
    }
    assert task["ResultPath"] is None


def test_a_pool_step_beside_fresh_ones_still_goes_to_the_queue(mixed):
    assert mixed["States"]["lint"]["Resource"] == SEND_AND_WAIT


def test_the_runner_gets_only_the_token_and_the_run_and_step_identity(mixed):
    overrides = mixed["States"]["build"]["Parameters"]["Overrides"]["ContainerOverrides"]
    assert [o["Name"] for o in overrides] == ["runner"]
    env = {e["Name"]: e.get("Value", e.get("Value.$")) for e in overrides[0]["Environment"]}
    assert env == {
        "FLOWDECK_FRESH_TOKEN": "$$.Task.Token",
        "FLOWDECK_FRESH_RUN_ID": "$$.Execution.Name",
        "FLOWDECK_FRESH_WORKFLOW": "mixed",
        "FLOWDECK_FRESH_STEP": "build",
        "FLOWDECK_FRESH_RETRY_COUNT": "States.Format('{}', $$.State.RetryCount)",
    }


def test_overrides_stay_under_the_ecs_limit_with_a_long_token(mixed):
    # Task tokens run to hundreds of characters; inputs are never in the overrides, whatever their size.
    parameters = mixed["States"]["build"]["Parameters"]["Overrides"]
    rendered = json.dumps(parameters).replace("$$.Task.Token", "t" * 2048)
    assert len(rendered) < MAX_OVERRIDES_CHARS
    assert "inputs" not in json.dumps(parameters)


def test_every_task_of_a_run_is_in_the_run_group(mixed):
    parameters = mixed["States"]["test"]["Parameters"]
    assert parameters["Group.$"] == "States.Format('flowdeck:{}', $$.Execution.Name)"


def test_a_fresh_step_allows_for_the_cold_start_in_heartbeat_and_backstop(mixed):
    build = mixed["States"]["build"]
    assert build["HeartbeatSeconds"] == 20 + COLD_START_SECONDS
    assert build["TimeoutSeconds"] == 600 + TIMEOUT_MARGIN_SECONDS + COLD_START_SECONDS
    assert mixed["States"]["lint"]["HeartbeatSeconds"] == 20


def test_a_fresh_step_keeps_the_pool_step_retries_and_lost_runner_record(mixed):
    build = mixed["States"]["build"]
    assert build["Retry"] == [
        {"ErrorEquals": [WORKER_STOPPED], "IntervalSeconds": 1, "MaxAttempts": WORKER_STOPPED_RETRIES},
        {"ErrorEquals": ["States.ALL"], "IntervalSeconds": 5, "MaxAttempts": 2, "BackoffRate": 2.0},
    ]
    assert catcher(build, LOST_ERRORS)["Next"] == "build:WorkerLost"
    _, recorder = lost_recorder(mixed, "build")
    cause = recorder["Parameters"]["ExpressionAttributeValues"][":cause"]["S"]
    assert cause.startswith("the task running step build stopped answering")


def test_a_paused_fresh_step_tells_its_runner_the_attempts_so_far(mixed):
    env = mixed["States"]["report"]["Parameters"]["Overrides"]["ContainerOverrides"][0]["Environment"]
    assert {
        "Name": "FLOWDECK_FRESH_ATTEMPT_BASE",
        "Value.$": "States.Format('{}', $.pauses.p3.attempts)",
    } in env
    assert mixed["States"]["report"]["Catch"][-1]["Next"] == "report:Paused"


def test_one_task_definition_per_distinct_image_and_resources():
    definition = definition_of(MIXED)
    shapes = fresh_shapes([definition])
    assert sorted(((s.image or ""), s.cpu, s.memory) for s in shapes.values()) == [
        ("", 256, 512),
        ("public.ecr.aws/docker/library/alpine:3.20", 1024, 2048),
    ]
    other = definition_of(MIXED.replace("name: mixed", "name: other"))
    assert fresh_shapes([definition, other]) == shapes


def test_a_run_flags_once_which_fresh_steps_its_retry_reuses(mixed):
    assert mixed["States"]["RecordRunStart"]["Next"] == REUSED_FRESH_STEPS
    flags = mixed["States"][REUSED_FRESH_STEPS]
    assert flags == {
        "Type": "Pass",
        "Parameters": {
            "p0.$": "States.ArrayContains($.meta.reuse, 'build')",
            "p1.$": "States.ArrayContains($.meta.reuse, 'test')",
            "p3.$": "States.ArrayContains($.meta.reuse, 'report')",
        },
        "ResultPath": "$.reusing",
        "Next": "build:Reused?",
    }


def test_a_reused_fresh_step_goes_on_without_starting_a_task(mixed):
    states = mixed["States"]
    assert states["build:Reused?"] == {
        "Type": "Choice",
        "Comment": "step build reused by this retry: no task",
        "Choices": [{"Variable": "$.reusing.p0", "BooleanEquals": True, "Next": "test:Reused?"}],
        "Default": "build",
    }
    # Every way into a fresh step passes its reuse check; a pool step's worker answers "reused" itself.
    assert states["build"]["Next"] == "test:Reused?"
    assert states["test:Reused?"]["Choices"][0]["Next"] == "lint"
    assert states["test"]["Next"] == "lint"
    assert states["lint"]["Next"] == "report:Reused?"
    assert states["report:Reused?"]["Choices"][0]["Next"] == "RecordRunSucceeded"
    # Retry step after a pause runs the task again, never the reuse check.
    assert states["report:Decision"]["Choices"][0]["Next"] == "report"


def test_a_reused_fresh_step_ending_a_branch_ends_it():
    asl = compiled(
        "name: p\nruntime_config: {mode: fresh}\n"
        "steps:\n  - {id: a, run: echo, needs: []}\n  - {id: b, run: echo, needs: []}\n"
    )
    branch = asl["States"]["Parallel 1: a"]["Branches"][0]
    assert branch["StartAt"] == "a:Reused?"
    assert branch["States"]["a:Reused?"]["Choices"][0]["Next"] == "a:continue"
    assert branch["States"]["a:continue"] == {"Type": "Pass", "End": True}
    assert branch["States"]["a"]["End"] is True


def test_a_workflow_without_fresh_steps_has_no_reuse_checks():
    asl = compiled("name: p\nsteps:\n  - {id: a, run: echo}\n")
    assert REUSED_FRESH_STEPS not in asl["States"]
    assert asl["States"]["RecordRunStart"]["Next"] == "a"


def test_a_task_that_fails_to_start_or_stops_unanswered_is_recorded_with_its_own_error(mixed):
    build = mixed["States"]["build"]
    # Before any catch-all, after the lost-runner one: these are known at once, not at a timeout.
    assert build["Catch"][1] == {
        "ErrorEquals": FRESH_START_ERRORS,
        "ResultPath": "$.error",
        "Next": "build:TaskFailed",
    }
    assert {"TaskStopped", "AmazonECS.Unknown", "ECS.AmazonECSException", "ECS.AccessDeniedException"} <= set(
        FRESH_START_ERRORS
    )
    recorder = mixed["States"]["build:TaskFailed"]
    parameters = recorder["Parameters"]
    assert parameters["Key"]["sk"] == {"S": "STEP#build"}
    values = parameters["ExpressionAttributeValues"]
    assert (values[":failed"], values[":error"], values[":cause"], values[":lost"]) == (
        {"S": "failed"},
        {"S.$": "$.error.Error"},
        {"S.$": "$.error.Cause"},
        {"S": "lost"},
    )
    # Then as any failure of the step: the run's failure record here, the pause for a pausing step.
    assert recorder["Next"] == "RecordRunFailed"
    assert mixed["States"]["report:TaskFailed"]["Next"] == "report:Paused"
    # A pool step's worker records its own failures: it has no such catcher.
    assert all(c["ErrorEquals"] != FRESH_START_ERRORS for c in mixed["States"]["lint"]["Catch"])


def test_a_fresh_step_in_a_branch_that_fails_to_start_leaves_the_branch_with_its_error():
    asl = compiled(
        "name: p\nruntime_config: {mode: fresh}\n"
        "steps:\n  - {id: a, run: echo, needs: []}\n  - {id: b, run: echo, needs: [], on_failure: continue}\n"
    )
    first, second = (branch["States"] for branch in asl["States"]["Parallel 1: a"]["Branches"])
    assert first["a:TaskFailed"]["Next"] == "a:Failed!"
    assert first["a:Failed!"] == {"Type": "Fail", "ErrorPath": "$.error.Error", "CausePath": "$.error.Cause"}
    assert second["b:TaskFailed"]["Next"] == "b:continue"
