"""Fresh tasks that stop before their runner answered (StoppedTasksHandler): an EventBridge rule on the
fresh cluster's "ECS Task State Change" events (STOPPED) -> lambdas.task_stopped, which fails the
step's token at once with ECS's stop reason (flowdeck.control.stopped_tasks)."""

from __future__ import annotations

from collections.abc import Sequence

from aws_cdk import Duration
from aws_cdk import aws_ecs as ecs
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.control.stopped_tasks import stopped_tasks_pattern
from stacks.api import powertools_layer_arn
from stacks.bundling import dependencies_layer
from stacks.defaults import python_handler

STOPPED_TASKS_HANDLER = "lambdas.task_stopped.lambda_handler"
STOPPED_TASKS_SERVICE = "flowdeck-task-stopped"
# EventBridge retries a failed invocation; past these the step's heartbeat timeout still catches it.
STOPPED_TASKS_RETRY_ATTEMPTS = 8
STOPPED_TASKS_MAX_EVENT_AGE = Duration.hours(1)


class StoppedTasksHandler(Construct):
    """The fresh cluster's stopped tasks (ECS "Task State Change" events) -> lambdas.task_stopped, which
    fails the token of a step whose runner never answered (TaskStopped, with ECS's stop reason)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        cluster: ecs.ICluster,
        state_machines: Sequence[sfn.IStateMachine],
    ) -> None:
        super().__init__(scope, construct_id)
        built = python_handler(
            self,
            "Handler",
            handler=STOPPED_TASKS_HANDLER,
            description="Flowdeck stopped fresh tasks (fails the step of a task that stopped unanswered)",
            layers=[
                lambda_.LayerVersion.from_layer_version_arn(self, "Powertools", powertools_layer_arn()),
                dependencies_layer(self, "Dependencies"),
            ],
            timeout=Duration.seconds(30),
            tracing=lambda_.Tracing.PASS_THROUGH,
            environment={"POWERTOOLS_SERVICE_NAME": STOPPED_TASKS_SERVICE},
        )
        self.function, self.role = built.function, built.role
        # Only SendTaskFailure, only on the state machines that start fresh tasks: the event carries the
        # token in the task's overrides, so no ECS read is needed.
        for machine in state_machines:
            machine.grant(self.function, "states:SendTaskFailure")
        pattern = stopped_tasks_pattern(cluster.cluster_arn)
        self.rule = events.Rule(
            self,
            "Stopped",
            description="Flowdeck fresh tasks that stopped: fail the step whose runner never answered",
            event_pattern=events.EventPattern(
                source=pattern["source"], detail_type=pattern["detail-type"], detail=pattern["detail"]
            ),
            targets=[
                targets.LambdaFunction(
                    self.function,
                    retry_attempts=STOPPED_TASKS_RETRY_ATTEMPTS,
                    max_event_age=STOPPED_TASKS_MAX_EVENT_AGE,
                )
            ],
        )
        NagSuppressions.add_resource_suppressions(
            self.role,
            [
                NagPackSuppression(
                    id="AwsSolutions-IAM5",
                    reason="X-Ray PutTraceSegments/PutTelemetryRecords (added for PassThrough tracing) do "
                    "not support resource-level permissions.",
                    applies_to=["Resource::*"],
                )
            ],
            apply_to_children=True,
        )
