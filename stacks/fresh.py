"""Fresh mode on AWS: one Fargate task definition per distinct image/resources pair (FreshSteps).

A step without an image runs in the runner image alone (as in the pool). A step with its own image
gets two containers sharing a volume, as Argo's emissary executor does: the Flowdeck runner
(records, logs, heartbeats, answers the token) and the step's image, whose entry point is a small
`/bin/sh` shim (flowdeck.runner.shim) that waits for the runner's command, runs it with its output
in FIFOs on the volume and relays the runner's signals; so any image with `/bin/sh` works.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, Fn, Stack
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    ASL_FRESH_CLUSTER,
    ASL_FRESH_PUBLIC_IP,
    ASL_FRESH_SECURITY_GROUP,
    ASL_FRESH_SUBNETS,
    ENV_ARTIFACTS_BUCKET,
    ENV_LOGS_TABLE,
    ENV_RUNS_TABLE,
    ENV_STATE_MACHINE_ARN_PREFIX,
    ENV_WORKFLOWS_DIR,
    FRESH_RUNNER_CONTAINER,
    FRESH_STEP_CONTAINER,
)
from flowdeck.definition import WorkflowDefinition
from flowdeck.runner.shim import ENV_SHIM_DIR, SHIM_DIR, SHIM_SCRIPT
from flowdeck.stores.fresh_tasks import family_name
from stacks.data import ArtifactStore
from statemachines.fresh_step import FreshTaskShape, fresh_shapes

FRESH_COMMAND = ["python", "-m", "flowdeck.runner.fresh"]
# Where the worker image keeps the workflows it was built with (Dockerfile: FLOWDECK_WORKSPACE).
IMAGE_WORKFLOWS_DIR = "/opt/flowdeck/workflows"
SHIM_VOLUME = "flowdeck-shim"
# Fargate's maximum: StopTask gives the runner this long before SIGKILL.
STOP_TIMEOUT = Duration.seconds(120)
ECS_TASKS_SERVICE = "ecs-tasks.amazonaws.com"


class FreshSteps(Construct):
    """Task definitions for the fresh steps of every workflow, their roles, and who may use them."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definitions: Mapping[str, WorkflowDefinition],
        cluster: ecs.ICluster,
        image: ecs.ContainerImage,
        subnet_ids: list[str],
        security_group_id: str,
        runner_environment: Mapping[str, str],
    ) -> None:
        super().__init__(scope, construct_id)
        self.cluster = cluster
        self.subnet_ids = subnet_ids
        self.security_group_id = security_group_id
        self.shapes = fresh_shapes(list(definitions.values()))
        self.log_group = logs.LogGroup(self, "Logs", retention=logs.RetentionDays.ONE_MONTH)
        # One task role for every fresh task (the runner's rights, as a pool worker's), one to pull and log.
        self.task_role = iam.Role(self, "TaskRole", assumed_by=iam.ServicePrincipal(ECS_TASKS_SERVICE))
        self.execution_role = iam.Role(
            self, "ExecutionRole", assumed_by=iam.ServicePrincipal(ECS_TASKS_SERVICE)
        )
        self.task_definitions = {
            key: self._build_task_definition(shape, image, runner_environment)
            for key, shape in self.shapes.items()
        }
        if self.task_definitions:
            self._suppress_findings()

    def _build_task_definition(
        self, shape: FreshTaskShape, image: ecs.ContainerImage, environment: Mapping[str, str]
    ) -> ecs.FargateTaskDefinition:
        task_definition = ecs.FargateTaskDefinition(
            self,
            f"Task{shape.key}",
            family=family_name(shape.key),
            cpu=shape.cpu,
            memory_limit_mib=shape.memory,
            task_role=self.task_role,
            execution_role=self.execution_role,
            # The runner sees the step's processes (ps, /proc) in the task's one PID namespace.
            pid_mode=ecs.PidMode.TASK,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        runner = task_definition.add_container(
            FRESH_RUNNER_CONTAINER,
            image=image,
            command=FRESH_COMMAND,
            essential=True,
            environment={**environment, ENV_WORKFLOWS_DIR: IMAGE_WORKFLOWS_DIR},
            logging=ecs.LogDrivers.aws_logs(stream_prefix="fresh", log_group=self.log_group),
            stop_timeout=STOP_TIMEOUT,
        )
        if shape.image is None:
            return task_definition
        task_definition.add_volume(name=SHIM_VOLUME)
        mount = ecs.MountPoint(container_path=SHIM_DIR, source_volume=SHIM_VOLUME, read_only=False)
        runner.add_mount_points(mount)
        runner.add_environment(ENV_SHIM_DIR, SHIM_DIR)
        step = task_definition.add_container(
            FRESH_STEP_CONTAINER,
            image=ecs.ContainerImage.from_registry(shape.image),
            # Not essential: the runner records the end and answers after the step's container exits.
            essential=False,
            entry_point=["/bin/sh", "-c"],
            command=[SHIM_SCRIPT],
            logging=ecs.LogDrivers.aws_logs(stream_prefix="step", log_group=self.log_group),
            stop_timeout=STOP_TIMEOUT,
        )
        step.add_mount_points(mount)
        return task_definition

    def substitutions(self) -> dict[str, str]:
        """ASL substitutions: the cluster, subnets, security group and each shape's family."""
        if not self.shapes:
            return {}
        return {
            ASL_FRESH_CLUSTER: self.cluster.cluster_arn,
            ASL_FRESH_SUBNETS: Fn.join(",", self.subnet_ids),
            ASL_FRESH_SECURITY_GROUP: self.security_group_id,
            # Public subnets without NAT (the pool's VPC): a task reaches registries and AWS APIs so.
            ASL_FRESH_PUBLIC_IP: "ENABLED",
            **{shape.placeholder: family_name(key) for key, shape in self.shapes.items()},
        }

    def grant_run(self, role: iam.IRole, shapes: list[FreshTaskShape]) -> None:
        """RunTask of these shapes' families in this cluster only, and PassRole of their roles to ECS."""
        if not shapes:
            return
        stack = Stack.of(self)
        families = [
            stack.format_arn(
                service="ecs", resource="task-definition", resource_name=f"{family_name(s.key)}:*"
            )
            for s in shapes
        ]
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:RunTask"],
                resources=families,
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["iam:PassRole"],
                resources=[self.task_role.role_arn, self.execution_role.role_arn],
                conditions={"StringEquals": {"iam:PassedToService": ECS_TASKS_SERVICE}},
            )
        )
        _suppress(
            role,
            "ecs:RunTask on the revisions of this workflow's own fresh task families "
            "(flowdeck-fresh-<key>:*, in the Flowdeck cluster only): the state machine names the family, "
            "and each deploy registers a new revision.",
            "task-definition\\/flowdeck-fresh-[0-9a-f]+:\\*",
        )

    def grant_stop(self, role: iam.IRole) -> None:
        """Find and stop fresh tasks in this cluster (a cancel): ListTasks, DescribeTasks, StopTask."""
        stack = Stack.of(self)
        in_cluster = f"{self.cluster.cluster_name}/*"
        tasks = stack.format_arn(service="ecs", resource="task", resource_name=in_cluster)
        # ListTasks is authorized on the cluster's container instances, with the cluster condition.
        instances = stack.format_arn(service="ecs", resource="container-instance", resource_name=in_cluster)
        role.add_to_principal_policy(
            iam.PolicyStatement(
                actions=["ecs:ListTasks"],
                resources=[instances],
                conditions={"ArnEquals": {"ecs:cluster": self.cluster.cluster_arn}},
            )
        )
        role.add_to_principal_policy(
            iam.PolicyStatement(actions=["ecs:DescribeTasks", "ecs:StopTask"], resources=[tasks])
        )
        _suppress(
            role,
            "Cancel: ListTasks, DescribeTasks and StopTask on the tasks of the Flowdeck cluster only; task "
            "ids are made by RunTask, so no finer ARN exists when the stack is built (a cancel picks the "
            "run's tasks by their group).",
            "(task|container-instance)\\/.*\\/\\*",
        )

    def grant_runner(
        self, table: dynamodb.ITable, logs_table: dynamodb.ITable, artifacts: ArtifactStore
    ) -> None:
        """What a fresh task's runner does: a pool worker's rights, minus the steps queue."""
        table.grant_read_write_data(self.task_role)
        logs_table.grant_read_write_data(self.task_role)
        artifacts.grant_artifacts_read_write(self.task_role)

    def _suppress_findings(self) -> None:
        for task_definition in self.task_definitions.values():
            NagSuppressions.add_resource_suppressions(
                task_definition,
                [
                    NagPackSuppression(
                        id="AwsSolutions-ECS2",
                        reason="The environment holds only resource names (tables, bucket, ARN prefix), "
                        "no secrets; the token and run identity come as RunTask overrides.",
                    )
                ],
            )


def _suppress(role: iam.IRole, reason: str, resource_pattern: str) -> None:
    """An IAM5 suppression for one ECS resource pattern (the part after the account), with its reason."""
    prefix = "/^Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:"
    NagSuppressions.add_resource_suppressions(
        role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason=reason,
                applies_to=[{"regex": f"{prefix}{resource_pattern}$/g"}],
            )
        ],
        apply_to_children=True,
    )


def runner_environment(
    table: dynamodb.ITable, logs_table: dynamodb.ITable, artifacts: ArtifactStore, arn_prefix: str
) -> dict[str, str]:
    """The settings a fresh task's runner reads (CDK -> env var -> flowdeck settings)."""
    return {
        ENV_RUNS_TABLE: table.table_name,
        ENV_LOGS_TABLE: logs_table.table_name,
        ENV_ARTIFACTS_BUCKET: artifacts.bucket.bucket_name,
        ENV_STATE_MACHINE_ARN_PREFIX: arn_prefix,
    }
