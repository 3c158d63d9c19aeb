"""Triggers stack: EventBridge Scheduler schedules and EventBridge rules that start workflows directly.

Each `triggers[].schedule` is a Scheduler schedule whose target is StartExecution on the workflow's
state machine with `flowdeck.triggers.schedules.execution_input`; each `triggers[].event` is a rule
whose Step Functions target builds the execution input with `flowdeck.triggers.events`' input
transformer (the same template the local stack installs). Both retry and then park what they could
not deliver in one dead-letter queue; the state machine records the run with its trigger.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final, cast

from aws_cdk import Duration, Stack, TimeZone
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as events_targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_scheduler as scheduler
from aws_cdk import aws_scheduler_targets as scheduler_targets
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from cdk_nag import NagPackSuppression, NagSuppressions
from constructs import Construct

from flowdeck.definition import WorkflowDefinition
from flowdeck.definition.models import EventTrigger, ScheduleTrigger
from flowdeck.triggers import events as event_triggers
from flowdeck.triggers import schedules
from flowdeck.triggers.switch import SCHEDULE_GROUP, rule_name, schedule_name
from stacks.workflows import state_machine_name

# A firing or event that cannot start a run is retried this often, for at most this long, then
# parked in the dead-letter queue (a run that starts an hour late is rarely still wanted).
RETRY_ATTEMPTS: Final = 3
MAX_EVENT_AGE: Final = Duration.hours(1)
# The one role every schedule's target uses. Named, so the API (another stack) can pass it back when
# it disables or enables a schedule (UpdateSchedule resends the whole target) without an export.
SCHEDULES_ROLE_NAME: Final = "flowdeck-schedules"


class WorkflowTriggers(Construct):
    """One workflow's schedules and event rules, each starting its state machine."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        definition: WorkflowDefinition,
        state_machine: sfn.IStateMachine,
        dead_letter_queue: sqs.IQueue,
        schedule_group: scheduler.IScheduleGroup | None = None,
        schedules_role: iam.IRole | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.definition = definition
        self.state_machine = state_machine
        self.dead_letter_queue = dead_letter_queue
        self.schedule_group = schedule_group
        self.schedules_role = schedules_role
        self.schedules = [
            self._build_schedule(index, trigger) for index, trigger in schedules.schedule_triggers(definition)
        ]
        self.rules = [
            self._build_rule(index, trigger) for index, trigger in event_triggers.event_triggers(definition)
        ]

    def _build_schedule(self, index: int, trigger: ScheduleTrigger) -> scheduler.Schedule:
        # The target grants the schedules' role StartExecution on this state machine and SendMessage
        # to the dead-letter queue, nothing else.
        target = scheduler_targets.StepFunctionsStartExecution(
            self.state_machine,
            role=self.schedules_role,
            input=scheduler.ScheduleTargetInput.from_object(schedules.execution_input(trigger)),
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
        )
        return scheduler.Schedule(
            self,
            f"Schedule{index}",
            # Named, so pausing the workflow can find and disable it (flowdeck.triggers.switch).
            schedule_name=schedule_name(self.definition.name, index),
            schedule_group=self.schedule_group,
            description=f"{self.definition.name}: triggers[{index}] {trigger.cron} ({trigger.timezone})",
            schedule=scheduler.ScheduleExpression.expression(trigger.cron, TimeZone.of(trigger.timezone)),
            target=target,
            time_window=scheduler.TimeWindow.off(),
        )

    def _build_rule(self, index: int, trigger: EventTrigger) -> events.Rule:
        # The target's role may only StartExecution on this state machine; the DLQ's policy lets
        # only this rule send to it.
        target = events_targets.SfnStateMachine(
            self.state_machine,
            dead_letter_queue=self.dead_letter_queue,
            retry_attempts=RETRY_ATTEMPTS,
            max_event_age=MAX_EVENT_AGE,
        )
        rule = events.Rule(
            self,
            f"Event{index}",
            # Named, so pausing the workflow can find and disable it (flowdeck.triggers.switch).
            rule_name=rule_name(self.definition.name, index),
            description=f"{self.definition.name}: triggers[{index}] event -> trigger {trigger.trigger}",
            # Replaced below: the typed fields cannot carry every pattern (content filters in lists).
            event_pattern=events.EventPattern(detail={}),
            targets=[target],
        )
        cfn_rule = cast(events.CfnRule, rule.node.default_child)
        cfn_rule.add_property_override("EventPattern", trigger.pattern)
        # The input template the local stack installs too (flowdeck.triggers.events).
        cfn_rule.add_property_override(
            "Targets.0.InputTransformer",
            {
                "InputPathsMap": event_triggers.input_paths(self.definition),
                "InputTemplate": event_triggers.input_template(self.definition, trigger),
            },
        )
        return rule


class TriggersStack(Stack):
    """Schedules and event rules of every workflow, with one dead-letter queue for what fails."""

    def __init__(
        self, scope: Construct, construct_id: str, *, definitions: Mapping[str, WorkflowDefinition]
    ) -> None:
        super().__init__(
            scope, construct_id, description="Flowdeck triggers: EventBridge schedules and rules"
        )
        self.dead_letter_queue = self._build_dead_letter_queue()
        scheduled = any(schedules.schedule_triggers(d) for d in definitions.values())
        self.schedule_group = (
            scheduler.ScheduleGroup(self, "Schedules", schedule_group_name=SCHEDULE_GROUP)
            if scheduled
            else None
        )
        self.schedules_role = (
            iam.Role(
                self,
                "SchedulesRole",
                role_name=SCHEDULES_ROLE_NAME,
                assumed_by=iam.ServicePrincipal(
                    "scheduler.amazonaws.com",
                    conditions={"StringEquals": {"aws:SourceAccount": Stack.of(self).account}},
                ),
                description="EventBridge Scheduler starts Flowdeck workflows' executions",
            )
            if scheduled
            else None
        )
        self.workflows = {
            name: WorkflowTriggers(
                self,
                f"Triggers-{name}",
                definition=definition,
                # By name (the Workflows stack fixes it), so no export ties the two stacks together.
                state_machine=sfn.StateMachine.from_state_machine_name(
                    self, f"StateMachine-{name}", state_machine_name(name)
                ),
                dead_letter_queue=self.dead_letter_queue,
                schedule_group=self.schedule_group,
                schedules_role=self.schedules_role,
            )
            for name, definition in sorted(definitions.items())
            if schedules.schedule_triggers(definition) or event_triggers.event_triggers(definition)
        }

    def _build_dead_letter_queue(self) -> sqs.Queue:
        queue = sqs.Queue(
            self,
            "TriggersDlq",
            # SQS-managed SSE: Scheduler and EventBridge can send without a KMS key policy.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            retention_period=Duration.days(14),
        )
        NagSuppressions.add_resource_suppressions(
            queue,
            [
                NagPackSuppression(
                    id="AwsSolutions-SQS3",
                    reason="This queue is the dead-letter queue of the schedules and event rules.",
                )
            ],
            apply_to_children=True,
        )
        return queue
