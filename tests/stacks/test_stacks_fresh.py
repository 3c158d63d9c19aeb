"""Fresh mode on AWS: the fixture workflow fresh-build's ASL, task definitions and least-privilege IAM."""

from __future__ import annotations

import json
from typing import Any

import pytest
from aws_cdk import assertions
from stack_helpers import FIXTURE_WORKFLOWS, as_list, policy_statements, resources_of

from flowdeck.definition import load_workflows
from flowdeck.runner.shim import SHIM_DIR, SHIM_SCRIPT
from statemachines.fresh_step import RUN_TASK_AND_WAIT, fresh_shapes

FRESH = load_workflows(FIXTURE_WORKFLOWS)["fresh-build"]
SHAPES = fresh_shapes([FRESH])
WITH_IMAGE = next(key for key, shape in SHAPES.items() if shape.image)
RUNNER_ONLY = next(key for key, shape in SHAPES.items() if not shape.image)


def state_machine(workflows_template: assertions.Template, name: str) -> dict[str, Any]:
    (machine,) = [
        m["Properties"]
        for m in resources_of(workflows_template, "AWS::StepFunctions::StateMachine").values()
        if m["Properties"]["StateMachineName"] == name
    ]
    return machine


def fresh_task_definitions(compute_template: assertions.Template) -> dict[str, dict[str, Any]]:
    """Family -> properties, for the fresh steps' task definitions."""
    return {
        t["Properties"]["Family"]: t["Properties"]
        for t in resources_of(compute_template, "AWS::ECS::TaskDefinition").values()
        if str(t["Properties"].get("Family", "")).startswith("flowdeck-fresh-")
    }


def test_fresh_steps_start_fargate_tasks_and_the_pool_step_still_sends(
    workflows_template: assertions.Template,
) -> None:
    machine = state_machine(workflows_template, "flowdeck-fresh-build")
    states = json.loads(machine["DefinitionString"])["States"]

    assert [states[s]["Resource"] for s in ("compile", "test", "publish")] == [
        RUN_TASK_AND_WAIT,
        RUN_TASK_AND_WAIT,
        "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
    ]
    parameters = states["test"]["Parameters"]
    assert parameters["LaunchType"] == "FARGATE"
    assert parameters["TaskDefinition"] == "${FreshTask" + WITH_IMAGE + "}"
    substitutions = machine["DefinitionSubstitutions"]
    # The family by name: RunTask takes its latest revision, so no export pins a revision.
    assert substitutions["FreshTask" + WITH_IMAGE] == "flowdeck-fresh-" + WITH_IMAGE
    assert substitutions["FreshTask" + RUNNER_ONLY] == "flowdeck-fresh-" + RUNNER_ONLY
    assert substitutions["FreshAssignPublicIp"] == "ENABLED"
    assert "Fn::ImportValue" in json.dumps(substitutions["FreshClusterArn"])
    assert len(substitutions["FreshSubnetIds"]["Fn::Join"][1]) == 2


def test_workflows_without_fresh_steps_get_no_fresh_substitutions_or_rights(
    workflows_template: assertions.Template,
) -> None:
    machine = state_machine(workflows_template, "flowdeck-quick-check")
    assert not [k for k in machine["DefinitionSubstitutions"] if k.startswith("Fresh")]
    statements = policy_statements(workflows_template, "Workflowquickcheck")
    assert not [s for s in statements if any(a.startswith("ecs:") for a in as_list(s["Action"]))]


def test_one_task_definition_per_distinct_image_and_resources(compute_template: assertions.Template) -> None:
    definitions = fresh_task_definitions(compute_template)

    assert set(definitions) == {"flowdeck-fresh-" + WITH_IMAGE, "flowdeck-fresh-" + RUNNER_ONLY}
    runner_only = definitions["flowdeck-fresh-" + RUNNER_ONLY]
    assert (runner_only["Cpu"], runner_only["Memory"]) == ("256", "512")
    assert [c["Name"] for c in runner_only["ContainerDefinitions"]] == ["runner"]
    assert runner_only["ContainerDefinitions"][0]["Command"] == ["python", "-m", "flowdeck.runner.fresh"]
    assert runner_only["NetworkMode"] == "awsvpc"
    assert runner_only["RequiresCompatibilities"] == ["FARGATE"]


def test_a_step_image_runs_the_shim_beside_the_runner_on_a_shared_volume(
    compute_template: assertions.Template,
) -> None:
    task = fresh_task_definitions(compute_template)["flowdeck-fresh-" + WITH_IMAGE]
    runner, step = task["ContainerDefinitions"]

    assert (task["Cpu"], task["Memory"], task["PidMode"]) == ("1024", "2048", "task")
    assert (runner["Name"], runner["Essential"]) == ("runner", True)
    assert (step["Name"], step["Essential"]) == ("step", False)
    assert step["Image"] == "public.ecr.aws/docker/library/alpine:3.20"
    # Only /bin/sh is needed in the step's image.
    assert (step["EntryPoint"], step["Command"]) == (["/bin/sh", "-c"], [SHIM_SCRIPT])
    volume = task["Volumes"][0]["Name"]
    for container in (runner, step):
        assert container["MountPoints"] == [
            {"ContainerPath": SHIM_DIR, "ReadOnly": False, "SourceVolume": volume}
        ]
    env = {e["Name"]: e["Value"] for e in runner["Environment"]}
    assert env["FLOWDECK_SHIM_DIR"] == SHIM_DIR
    assert env["FLOWDECK_WORKFLOWS_DIR"] == "/opt/flowdeck/workflows"


def test_the_state_machine_may_run_only_its_families_in_the_cluster_and_pass_only_their_roles(
    workflows_template: assertions.Template,
) -> None:
    statements = policy_statements(workflows_template, "Workflowfreshbuild")
    (run,) = [s for s in statements if as_list(s["Action"]) == ["ecs:RunTask"]]
    (passes,) = [s for s in statements if as_list(s["Action"]) == ["iam:PassRole"]]

    assert {r["Fn::Join"][1][-1] for r in run["Resource"]} == {
        f":task-definition/flowdeck-fresh-{key}:*" for key in SHAPES
    }
    assert list(run["Condition"]["ArnEquals"]) == ["ecs:cluster"]
    assert passes["Condition"] == {"StringEquals": {"iam:PassedToService": "ecs-tasks.amazonaws.com"}}
    assert len(passes["Resource"]) == 2


def test_the_api_may_stop_only_tasks_of_the_fresh_cluster(api_template: assertions.Template) -> None:
    statements = policy_statements(api_template, "HandlerRole")
    ecs = [s for s in statements if any(a.startswith("ecs:") for a in as_list(s["Action"]))]

    assert sorted(a for s in ecs for a in as_list(s["Action"])) == [
        "ecs:DescribeTasks",
        "ecs:ListTasks",
        "ecs:StopTask",
    ]
    for statement in ecs:
        (resource,) = as_list(statement["Resource"])
        assert resource != "*"
    (listing,) = [s for s in ecs if as_list(s["Action"]) == ["ecs:ListTasks"]]
    assert list(listing["Condition"]["ArnEquals"]) == ["ecs:cluster"]


def test_the_fresh_runner_role_has_a_workers_rights_without_the_queue(
    compute_template: assertions.Template,
) -> None:
    statements = policy_statements(compute_template, "FreshStepsTaskRole")
    actions = {a for s in statements for a in as_list(s["Action"])}

    assert {"states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"} <= actions
    assert "states:StopExecution" in actions
    assert not [a for a in actions if a.startswith("sqs:")]


def test_a_stopped_fresh_task_reaches_its_handler_through_a_rule_on_the_fresh_cluster(
    workflows_template: assertions.Template,
) -> None:
    (rule,) = [
        r["Properties"]
        for r in resources_of(workflows_template, "AWS::Events::Rule").values()
        if r["Properties"].get("EventPattern", {}).get("source") == ["aws.ecs"]
    ]
    pattern = rule["EventPattern"]
    assert pattern["detail-type"] == ["ECS Task State Change"]
    assert pattern["detail"]["lastStatus"] == ["STOPPED"]
    # Only the fresh cluster's tasks (imported from the compute stack), not the pool's workers.
    (cluster,) = pattern["detail"]["clusterArn"]
    assert "Fn::ImportValue" in json.dumps(cluster)
    (target,) = rule["Targets"]
    assert target["RetryPolicy"] == {"MaximumRetryAttempts": 8, "MaximumEventAgeInSeconds": 3600}
    (function_id,) = [
        name
        for name, f in resources_of(workflows_template, "AWS::Lambda::Function").items()
        if f["Properties"]["Handler"] == "lambdas.task_stopped.lambda_handler"
    ]
    assert target["Arn"] == {"Fn::GetAtt": [function_id, "Arn"]}


def test_the_stopped_task_handler_may_only_fail_tokens_of_the_fresh_workflows(
    workflows_template: assertions.Template,
) -> None:
    statements = policy_statements(workflows_template, "StoppedFreshTasksHandlerRole")
    states = [s for s in statements if any(a.startswith("states:") for a in as_list(s["Action"]))]

    (grant,) = states
    assert as_list(grant["Action"]) == ["states:SendTaskFailure"]
    (machine,) = as_list(grant["Resource"])
    assert "Workflowfreshbuild" in machine["Ref"]
    # The event carries the token: no ECS read, no other table or queue.
    assert not [
        s
        for s in statements
        if any(a.startswith(("ecs:", "dynamodb:", "sqs:")) for a in as_list(s["Action"]))
    ]


@pytest.mark.parametrize("role", ["StepWorkersRunnerTaskRole", "FreshStepsTaskRole"])
def test_a_budget_guard_may_stop_only_tasks_of_the_fresh_cluster(
    compute_template: assertions.Template, role: str
) -> None:
    statements = policy_statements(compute_template, role)
    ecs = [s for s in statements if any(a.startswith("ecs:") for a in as_list(s["Action"]))]

    assert {a for s in ecs for a in as_list(s["Action"])} >= {
        "ecs:ListTasks",
        "ecs:DescribeTasks",
        "ecs:StopTask",
    }
    assert "*" not in [r for s in ecs for r in as_list(s["Resource"])]
    (listing,) = [s for s in ecs if as_list(s["Action"]) == ["ecs:ListTasks"]]
    assert list(listing["Condition"]["ArnEquals"]) == ["ecs:cluster"]


def test_workers_and_fresh_tasks_are_told_the_fresh_cluster(compute_template: assertions.Template) -> None:
    for definition in resources_of(compute_template, "AWS::ECS::TaskDefinition").values():
        (runner,) = [
            c for c in definition["Properties"]["ContainerDefinitions"] if c["Name"] in ("runner", "worker")
        ]
        env = {e["Name"]: e["Value"] for e in runner["Environment"]}
        assert "Ref" in json.dumps(env["FLOWDECK_FRESH_CLUSTER"])
