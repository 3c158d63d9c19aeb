"""Compute stack: the steps queue and the pool of Fargate workers that answer it (StepWorkers)."""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import ArnFormat, Duration, IgnoreMode, Stack
from aws_cdk import aws_applicationautoscaling as appscaling
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_ecr_assets as ecr_assets
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_sqs as sqs
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.constants import (
    ENV_ARTIFACTS_BUCKET,
    ENV_FRESH_CLUSTER,
    ENV_LOGS_TABLE,
    ENV_RUNS_TABLE,
    ENV_STATE_MACHINE_ARN_PREFIX,
    ENV_STEPS_QUEUE_URL,
    ENV_WORKER_STOP_SECONDS,
    STATE_MACHINE_PREFIX,
    WORKER_STOP_TIMEOUT_SECONDS,
)
from flowdeck.definition import WorkflowDefinition
from stacks.assets import REPO_ROOT, WORKER_IMAGE_EXCLUDE
from stacks.data import ArtifactStore
from stacks.fresh import FreshSteps, runner_environment

WORKER_COMMAND = ["python", "-m", "flowdeck.runner.worker"]
# One worker runs up to FLOWDECK_WORKER_CONCURRENCY (default 4) steps at once.
WORKER_CPU = 1024
WORKER_MEMORY_MIB = 2048
MIN_WORKERS = 1
MAX_WORKERS = 10
DLQ_MAX_RECEIVE_COUNT = 3
# Fargate's maximum: after SIGTERM (scale-in, deploy) a worker finishes its steps within it or hands
# them back (flowdeck.runner.worker); the worker is told the same figure.
WORKER_STOP_TIMEOUT = Duration.seconds(WORKER_STOP_TIMEOUT_SECONDS)
# The worker deletes a message as soon as it takes it (the Step Functions heartbeat, not SQS
# redelivery, catches a worker that dies mid-step), so this only covers receive-to-delete.
QUEUE_VISIBILITY_TIMEOUT = Duration.minutes(5)
LOG_RETENTION = logs.RetentionDays.ONE_MONTH
TASK_TOKEN_ACTIONS = ["states:SendTaskSuccess", "states:SendTaskFailure", "states:SendTaskHeartbeat"]
# The budget guard stops the execution of a run whose cost passed max_cost_usd.
BUDGET_GUARD_ACTIONS = ["states:StopExecution"]


class StepWorkers(Construct):
    """Steps queue (with DLQ) and a Fargate service of pool workers consuming it."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        artifacts: ArtifactStore,
        logs_table: dynamodb.ITable,
    ) -> None:
        super().__init__(scope, construct_id)
        # Synth only stages the build context; the image is built by `cdk deploy` (needs Docker).
        self.image = ecs.ContainerImage.from_asset(
            str(REPO_ROOT),
            exclude=WORKER_IMAGE_EXCLUDE,
            ignore_mode=IgnoreMode.GLOB,
            platform=ecr_assets.Platform.LINUX_AMD64,
        )
        self.dead_letter_queue, self.queue = self._build_queues()
        self.vpc = self._build_vpc()
        self.cluster = ecs.Cluster(
            self, "Cluster", vpc=self.vpc, container_insights_v2=ecs.ContainerInsights.ENABLED
        )
        self.log_group = logs.LogGroup(self, "WorkerLogs", retention=LOG_RETENTION)
        self.task_definition, self.container = self._build_task_definition(table, artifacts)
        # The ECS agent's scale-in protection endpoint calls UpdateTaskProtection with the task role.
        self.cluster.grant_task_protection(self.task_definition.task_role)
        self._grant_logs(logs_table)
        self.security_group = self._build_security_group()
        self.service = self._build_service()
        self.scaling = self._build_scaling()
        self._suppress_findings()

    def _build_queues(self) -> tuple[sqs.Queue, sqs.Queue]:
        dead_letter_queue = sqs.Queue(
            self,
            "StepsDlq",
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        NagSuppressions.add_resource_suppressions(
            dead_letter_queue,
            [NagPackSuppression(id="AwsSolutions-SQS3", reason="This queue is the steps queue's DLQ.")],
            apply_to_children=True,
        )
        queue = sqs.Queue(
            self,
            "StepsQueue",
            # SQS-managed SSE: encrypted at rest with no KMS key policy for Step Functions to need.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            visibility_timeout=QUEUE_VISIBILITY_TIMEOUT,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=dead_letter_queue, max_receive_count=DLQ_MAX_RECEIVE_COUNT
            ),
        )
        return dead_letter_queue, queue

    def _build_vpc(self) -> ec2.Vpc:
        # Public subnets and no NAT gateway: workers only make outbound calls (AWS APIs and whatever
        # the steps' commands fetch), so a public IP with an ingress-free security group is the
        # cheapest egress; two NAT gateways would cost more than the workers. Gateway endpoints
        # (free) keep DynamoDB and S3 traffic off the internet.
        vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            subnet_configuration=[
                ec2.SubnetConfiguration(name="public", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=24)
            ],
            gateway_endpoints={
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
                "DynamoDb": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.DYNAMODB),
            },
        )
        flow_logs = logs.LogGroup(self, "FlowLogs", retention=LOG_RETENTION)
        vpc.add_flow_log(
            "FlowLog",
            destination=ec2.FlowLogDestination.to_cloud_watch_logs(flow_logs),
            traffic_type=ec2.FlowLogTrafficType.ALL,
        )
        return vpc

    def _build_task_definition(
        self, table: dynamodb.ITable, artifacts: ArtifactStore
    ) -> tuple[ecs.FargateTaskDefinition, ecs.ContainerDefinition]:
        task_definition = ecs.FargateTaskDefinition(
            self,
            "Runner",
            cpu=WORKER_CPU,
            memory_limit_mib=WORKER_MEMORY_MIB,
            runtime_platform=ecs.RuntimePlatform(
                cpu_architecture=ecs.CpuArchitecture.X86_64,
                operating_system_family=ecs.OperatingSystemFamily.LINUX,
            ),
        )
        container = task_definition.add_container(
            "worker",
            image=self.image,
            command=WORKER_COMMAND,
            environment={
                ENV_RUNS_TABLE: table.table_name,
                ENV_STEPS_QUEUE_URL: self.queue.queue_url,
                ENV_ARTIFACTS_BUCKET: artifacts.bucket.bucket_name,
                ENV_WORKER_STOP_SECONDS: str(WORKER_STOP_TIMEOUT_SECONDS),
            },
            logging=ecs.LogDrivers.aws_logs(stream_prefix="worker", log_group=self.log_group),
            stop_timeout=WORKER_STOP_TIMEOUT,
        )
        task_role = task_definition.task_role
        table.grant_read_write_data(task_role)
        artifacts.grant_artifacts_read_write(task_role)
        self.queue.grant_consume_messages(task_role)
        task_role.add_to_principal_policy(iam.PolicyStatement(actions=TASK_TOKEN_ACTIONS, resources=["*"]))
        self._grant_budget_guard(task_role, container)
        return task_definition, container

    def _grant_budget_guard(self, task_role: iam.IRole, container: ecs.ContainerDefinition) -> None:
        """StopExecution on Flowdeck's own executions only; the ARN prefix names an execution if needed."""
        container.add_environment(ENV_STATE_MACHINE_ARN_PREFIX, self.state_machine_arn_prefix)
        grant_budget_guard(task_role)

    @property
    def state_machine_arn_prefix(self) -> str:
        return Stack.of(self).format_arn(
            service="states",
            resource="stateMachine",
            resource_name=STATE_MACHINE_PREFIX,
            arn_format=ArnFormat.COLON_RESOURCE_NAME,
        )

    def build_fresh_steps(
        self,
        definitions: Mapping[str, WorkflowDefinition],
        table: dynamodb.ITable,
        artifacts: ArtifactStore,
        logs_table: dynamodb.ITable,
    ) -> FreshSteps:
        """The fresh steps' task definitions: this pool's cluster, subnets, no-ingress group and image."""
        fresh = FreshSteps(
            self,
            "FreshSteps",
            definitions=definitions,
            cluster=self.cluster,
            image=self.image,
            subnet_ids=[subnet.subnet_id for subnet in self.vpc.public_subnets],
            security_group_id=self.security_group.security_group_id,
            runner_environment=runner_environment(table, logs_table, artifacts, self.state_machine_arn_prefix)
            | {ENV_FRESH_CLUSTER: self.cluster.cluster_name},
        )
        fresh.grant_runner(table, logs_table, artifacts)
        if fresh.shapes:
            # The budget guard (pool worker or fresh task) stops a run's fresh tasks still starting, as a
            # cancel does: the cluster's name, and ListTasks/DescribeTasks/StopTask in it only.
            self.container.add_environment(ENV_FRESH_CLUSTER, self.cluster.cluster_name)
            for role in (self.task_definition.task_role, fresh.task_role):
                fresh.grant_stop(role)
        fresh.task_role.add_to_principal_policy(
            iam.PolicyStatement(actions=TASK_TOKEN_ACTIONS, resources=["*"])
        )
        grant_budget_guard(fresh.task_role)
        suppress_runner_findings(fresh.task_role)
        suppress_execution_role_findings(fresh.execution_role)
        return fresh

    def _build_security_group(self) -> ec2.SecurityGroup:
        return ec2.SecurityGroup(
            self,
            "WorkerSecurityGroup",
            vpc=self.vpc,
            description="Flowdeck step workers: no inbound; outbound for AWS APIs and step commands",
            allow_all_outbound=True,
        )

    def _build_service(self) -> ecs.FargateService:
        return ecs.FargateService(
            self,
            "Service",
            cluster=self.cluster,
            task_definition=self.task_definition,
            desired_count=MIN_WORKERS,
            assign_public_ip=True,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            security_groups=[self.security_group],
            # Start the new worker before stopping the old one: the queue is never unattended.
            min_healthy_percent=100,
            max_healthy_percent=200,
            circuit_breaker=ecs.DeploymentCircuitBreaker(rollback=True),
        )

    def _build_scaling(self) -> ecs.ScalableTaskCount:
        scaling = self.service.auto_scale_task_count(min_capacity=MIN_WORKERS, max_capacity=MAX_WORKERS)
        # Backlog, not CPU, says whether steps wait: step commands are often idle (sleep, network).
        scaling.scale_on_metric(
            "QueueBacklog",
            metric=self.queue.metric_approximate_number_of_messages_visible(
                period=Duration.minutes(1), statistic="Maximum"
            ),
            scaling_steps=[
                appscaling.ScalingInterval(upper=0, change=-1),
                appscaling.ScalingInterval(lower=1, change=+1),
                appscaling.ScalingInterval(lower=10, change=+3),
            ],
            adjustment_type=appscaling.AdjustmentType.CHANGE_IN_CAPACITY,
            cooldown=Duration.minutes(5),
        )
        return scaling

    def _suppress_findings(self) -> None:
        NagSuppressions.add_resource_suppressions(
            self.task_definition,
            [
                NagPackSuppression(
                    id="AwsSolutions-ECS2",
                    reason="The environment holds only resource names (table, queue URL, bucket), "
                    "no secrets; config flows CDK -> env var -> flowdeck settings by design.",
                ),
            ],
        )
        suppress_runner_findings(self.task_definition.task_role)
        NagSuppressions.add_resource_suppressions(
            self.task_definition.task_role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="Scale-in protection: ecs:UpdateTaskProtection on the tasks of this cluster only; "
                    "a worker protects its own task, whose id ECS assigns at launch.",
                    applies_to=[
                        {
                            "regex": "/^Resource::arn:<AWS::Partition>:ecs:<AWS::Region>:<AWS::AccountId>:"
                            "task\\/<StepWorkersCluster[A-Za-z0-9]+>\\/\\*$/g"
                        }
                    ],
                ),
            ],
            apply_to_children=True,
        )
        execution_role = self.task_definition.execution_role
        if execution_role is None:  # pragma: no cover - created by the asset image's ECR pull grant
            raise RuntimeError("the task definition has no execution role")
        suppress_execution_role_findings(execution_role)

    def _grant_logs(self, logs_table: dynamodb.ITable) -> None:
        # PutItem for new batches; Query (consistent) to find a run's last seq after a conflict.
        self.container.add_environment(ENV_LOGS_TABLE, logs_table.table_name)
        logs_table.grant_read_write_data(self.task_definition.task_role)


def grant_budget_guard(task_role: iam.IRole) -> None:
    """StopExecution on the executions of Flowdeck's own state machines only."""
    executions = Stack.of(task_role).format_arn(
        service="states",
        resource="execution",
        resource_name=f"{STATE_MACHINE_PREFIX}*:*",
        arn_format=ArnFormat.COLON_RESOURCE_NAME,
    )
    task_role.add_to_principal_policy(
        iam.PolicyStatement(actions=BUDGET_GUARD_ACTIONS, resources=[executions])
    )


def suppress_runner_findings(task_role: iam.IRole) -> None:
    """The runner role's wildcards, each with its reason (pool workers and fresh tasks alike)."""
    NagSuppressions.add_resource_suppressions(
        task_role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="states:SendTaskSuccess/SendTaskFailure/SendTaskHeartbeat do not support "
                "resource-level permissions (the task token is the authorization).",
                applies_to=["Resource::*"],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Object-level S3 actions must name objects; scoped to the runs/ prefix of "
                "the artifacts bucket only.",
                applies_to=[{"regex": "/^Resource::.*/runs/\\*$/g"}],
            ),
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="Budget guard: states:StopExecution on the executions of Flowdeck's own state "
                "machines only (flowdeck-*:*); execution names are run ids, and the worker pool serves "
                "every workflow, so no finer ARN is known when the stack is built.",
                applies_to=[
                    {
                        "regex": "/^Resource::arn:<AWS::Partition>:states:<AWS::Region>:"
                        f"<AWS::AccountId>:execution:{STATE_MACHINE_PREFIX}\\*:\\*$/g"
                    }
                ],
            ),
        ],
        apply_to_children=True,
    )


def suppress_execution_role_findings(execution_role: iam.IRole) -> None:
    NagSuppressions.add_resource_suppressions(
        execution_role,
        [
            NagPackSuppression(
                id="AwsSolutions-IAM5",
                reason="ecr:GetAuthorizationToken does not support resource-level permissions "
                "(CDK's standard ECR pull grant; the image pull itself is scoped to the asset "
                "repository).",
                applies_to=["Resource::*"],
            ),
        ],
        apply_to_children=True,
    )


class ComputeStack(Stack):
    """Workers and the queue that dispatches steps to them, and the fresh steps' task definitions."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        table: dynamodb.ITable,
        artifacts: ArtifactStore,
        logs_table: dynamodb.ITable,
        definitions: Mapping[str, WorkflowDefinition] | None = None,
    ) -> None:
        super().__init__(scope, construct_id, description="Flowdeck compute: steps queue and Fargate workers")
        self.workers = StepWorkers(
            self, "StepWorkers", table=table, artifacts=artifacts, logs_table=logs_table
        )
        self.fresh = self.workers.build_fresh_steps(definitions or {}, table, artifacts, logs_table)
