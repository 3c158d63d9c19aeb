"""ComputeStack: steps queue, VPC, cluster, runner task definition, worker service."""

from __future__ import annotations

from aws_cdk import assertions
from aws_cdk.assertions import Match
from stack_helpers import as_list, policy_statements, resources_of, wildcard_actions

from flowdeck.constants import (
    ENV_ARTIFACTS_BUCKET,
    ENV_FRESH_CLUSTER,
    ENV_LOGS_TABLE,
    ENV_RUNS_TABLE,
    ENV_STATE_MACHINE_ARN_PREFIX,
    ENV_STEPS_QUEUE_URL,
    ENV_WORKER_STOP_SECONDS,
)
from stacks.compute import DLQ_MAX_RECEIVE_COUNT, TASK_TOKEN_ACTIONS, WORKER_COMMAND


def worker_task_definition(compute_template: assertions.Template) -> dict:
    """The pool workers' task definition (the fresh steps' ones are tests/stacks/test_stacks_fresh.py's)."""
    (task,) = [
        t
        for t in resources_of(compute_template, "AWS::ECS::TaskDefinition").values()
        if t["Properties"]["ContainerDefinitions"][0]["Command"] == WORKER_COMMAND
    ]
    return task


def _queues(compute_template: assertions.Template) -> tuple[dict, dict]:
    """(steps queue, dead-letter queue) properties."""
    queues = resources_of(compute_template, "AWS::SQS::Queue")
    assert len(queues) == 2
    ((main_id, main),) = [(k, q) for k, q in queues.items() if "RedrivePolicy" in q["Properties"]]
    ((dlq_id, dlq),) = [(k, q) for k, q in queues.items() if k != main_id]
    assert main["Properties"]["RedrivePolicy"]["deadLetterTargetArn"] == {"Fn::GetAtt": [dlq_id, "Arn"]}
    return main["Properties"], dlq["Properties"]


def test_steps_queue_has_a_dlq_after_three_receives(compute_template: assertions.Template) -> None:
    queue, _ = _queues(compute_template)

    assert DLQ_MAX_RECEIVE_COUNT == 3
    assert queue["RedrivePolicy"]["maxReceiveCount"] == 3


def test_queues_are_encrypted_and_tls_only(compute_template: assertions.Template) -> None:
    queue, dlq = _queues(compute_template)
    assert queue["SqsManagedSseEnabled"] is True
    assert dlq["SqsManagedSseEnabled"] is True

    tls_only = [
        policy
        for policy in resources_of(compute_template, "AWS::SQS::QueuePolicy").values()
        for statement in policy["Properties"]["PolicyDocument"]["Statement"]
        if statement["Effect"] == "Deny"
        and statement.get("Condition") == {"Bool": {"aws:SecureTransport": "false"}}
    ]
    assert len(tls_only) == 2


def test_runner_task_runs_the_worker_with_resource_names_in_its_environment(
    compute_template: assertions.Template,
) -> None:
    task = worker_task_definition(compute_template)
    props = task["Properties"]
    (container,) = props["ContainerDefinitions"]

    assert props["RequiresCompatibilities"] == ["FARGATE"]
    assert props["NetworkMode"] == "awsvpc"
    assert container["Command"] == WORKER_COMMAND == ["python", "-m", "flowdeck.runner.worker"]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert set(env) == {
        ENV_RUNS_TABLE,
        ENV_STEPS_QUEUE_URL,
        ENV_ARTIFACTS_BUCKET,
        ENV_LOGS_TABLE,
        ENV_STATE_MACHINE_ARN_PREFIX,
        ENV_WORKER_STOP_SECONDS,
        # The fixture workflows have fresh steps: the budget guard stops a stopped run's starting tasks.
        ENV_FRESH_CLUSTER,
    }
    assert "LogStoreTable" in env[ENV_LOGS_TABLE]["Fn::ImportValue"]
    assert "RunStoreTable" in env[ENV_RUNS_TABLE]["Fn::ImportValue"]
    assert "ArtifactStoreBucket" in env[ENV_ARTIFACTS_BUCKET]["Fn::ImportValue"]
    assert "StepsQueue" in env[ENV_STEPS_QUEUE_URL]["Ref"]
    assert container["LogConfiguration"]["LogDriver"] == "awslogs"
    assert container["StopTimeout"] == 120


def test_one_pool_worker_in_a_public_subnet_with_no_inbound_rules(
    compute_template: assertions.Template,
) -> None:
    compute_template.has_resource_properties(
        "AWS::ECS::Service",
        {
            "DesiredCount": 1,
            "LaunchType": "FARGATE",
            "NetworkConfiguration": {"AwsvpcConfiguration": Match.object_like({"AssignPublicIp": "ENABLED"})},
            "DeploymentConfiguration": Match.object_like(
                {"MinimumHealthyPercent": 100, "DeploymentCircuitBreaker": {"Enable": True, "Rollback": True}}
            ),
        },
    )
    for group in resources_of(compute_template, "AWS::EC2::SecurityGroup").values():
        assert "SecurityGroupIngress" not in group["Properties"]
    compute_template.resource_count_is("AWS::EC2::SecurityGroupIngress", 0)


def test_workers_scale_on_queue_backlog(compute_template: assertions.Template) -> None:
    compute_template.has_resource_properties(
        "AWS::ApplicationAutoScaling::ScalableTarget", {"MinCapacity": 1, "MaxCapacity": Match.any_value()}
    )
    compute_template.has_resource_properties(
        "AWS::CloudWatch::Alarm", {"MetricName": "ApproximateNumberOfMessagesVisible", "Namespace": "AWS/SQS"}
    )


def test_vpc_has_two_azs_no_nat_flow_logs_and_gateway_endpoints(
    compute_template: assertions.Template,
) -> None:
    compute_template.resource_count_is("AWS::EC2::Subnet", 2)
    compute_template.resource_count_is("AWS::EC2::NatGateway", 0)
    compute_template.has_resource_properties("AWS::EC2::FlowLog", {"TrafficType": "ALL"})
    endpoints = resources_of(compute_template, "AWS::EC2::VPCEndpoint").values()
    assert sorted(e["Properties"]["VpcEndpointType"] for e in endpoints) == ["Gateway", "Gateway"]


def test_cluster_has_container_insights(compute_template: assertions.Template) -> None:
    compute_template.has_resource_properties(
        "AWS::ECS::Cluster", {"ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}]}
    )


def test_task_role_wildcard_is_only_the_task_token_actions(compute_template: assertions.Template) -> None:
    statements = policy_statements(compute_template, "TaskRole")

    assert wildcard_actions(statements) == set(TASK_TOKEN_ACTIONS)
    actions = {action for s in statements for action in as_list(s["Action"])}
    assert {"sqs:ReceiveMessage", "sqs:DeleteMessage", "dynamodb:UpdateItem", "s3:PutObject"} <= actions
    assert not any(a.startswith("s3:Delete") for a in actions)


def test_budget_guard_may_stop_only_flowdeck_executions(compute_template: assertions.Template) -> None:
    statements = policy_statements(compute_template, "StepWorkersRunnerTaskRole")

    stops = [s for s in statements if "states:StopExecution" in as_list(s["Action"])]
    assert len(stops) == 1
    assert as_list(stops[0]["Action"]) == ["states:StopExecution"]
    (resource,) = as_list(stops[0]["Resource"])
    parts = resource["Fn::Join"][1]
    assert parts[-1] == ":execution:flowdeck-*:*"
    task = worker_task_definition(compute_template)
    (container,) = task["Properties"]["ContainerDefinitions"]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}
    assert env[ENV_STATE_MACHINE_ARN_PREFIX]["Fn::Join"][1][-1] == ":stateMachine:flowdeck-"


def test_a_worker_is_told_the_stop_timeout_ecs_gives_it(compute_template: assertions.Template) -> None:
    (container,) = worker_task_definition(compute_template)["Properties"]["ContainerDefinitions"]
    env = {item["Name"]: item["Value"] for item in container["Environment"]}

    # Fargate's maximum; the worker finishes or hands back its steps within the same figure.
    assert container["StopTimeout"] == 120
    assert env[ENV_WORKER_STOP_SECONDS] == "120"


def test_task_protection_and_the_budget_guards_stop_are_the_ecs_actions_only_on_the_clusters_tasks(
    compute_template: assertions.Template,
) -> None:
    statements = policy_statements(compute_template, "TaskRole")

    ecs_actions = {a for s in statements for a in as_list(s["Action"]) if a.startswith("ecs:")}
    # With fresh steps in the fixture, the budget guard may also stop a run's fresh tasks (cluster-scoped
    # in tests/stacks/test_stacks_fresh.py).
    assert ecs_actions == {"ecs:UpdateTaskProtection", "ecs:ListTasks", "ecs:DescribeTasks", "ecs:StopTask"}
    (protection,) = [s for s in statements if "ecs:UpdateTaskProtection" in as_list(s["Action"])]
    (resource,) = as_list(protection["Resource"])
    parts = resource["Fn::Join"][1]
    # arn:<partition>:ecs:<region>:<account>:task/<this cluster>/*
    assert ":task/" in parts[-3] and parts[-1] == "/*"
    assert parts[-2] == {"Ref": next(iter(resources_of(compute_template, "AWS::ECS::Cluster")))}
