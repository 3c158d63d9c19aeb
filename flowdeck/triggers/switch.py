"""On AWS, a paused workflow's EventBridge Scheduler schedules and EventBridge rules are disabled.

Scheduler and EventBridge call StartExecution themselves (no Flowdeck code sees their firings), so a
pause that only Flowdeck's API knew would let them start runs behind its back. The CDK app names
every schedule and rule with `schedule_name` / `rule_name` (the API's IAM policy lists exactly
those), so the API can find them by workflow. The local stack does not disable anything: its
scheduler and event-rule poller read the paused state and record each refused firing instead.
"""

from __future__ import annotations

import hashlib
from typing import Any, Final

from flowdeck.definition.models import WorkflowDefinition
from flowdeck.triggers import events, schedules

# Every Flowdeck schedule lives in this Scheduler schedule group; every rule's name starts with RULE_PREFIX.
SCHEDULE_GROUP: Final = "flowdeck"
RULE_PREFIX: Final = "flowdeck-"
MAX_NAME: Final = 64  # Scheduler schedule names and EventBridge rule names alike
# What UpdateSchedule needs back from GetSchedule: it replaces the whole schedule, not one field.
SCHEDULE_FIELDS: Final = (
    "Name",
    "GroupName",
    "ScheduleExpression",
    "ScheduleExpressionTimezone",
    "StartDate",
    "EndDate",
    "Description",
    "Target",
    "FlexibleTimeWindow",
    "KmsKeyArn",
    "ActionAfterCompletion",
)


def _name(prefix: str, workflow: str, index: int) -> str:
    """`<prefix><workflow>-<index>`, shortened with a hash of the workflow's name past 64 characters."""
    name = f"{prefix}{workflow}-{index}"
    if len(name) <= MAX_NAME:
        return name
    digest = hashlib.sha256(workflow.encode()).hexdigest()[:8]
    tail = f"-{digest}-{index}"
    return f"{prefix}{workflow[: MAX_NAME - len(prefix) - len(tail)]}{tail}"


def schedule_name(workflow: str, index: int) -> str:
    """The Scheduler schedule of `triggers[index]` (in SCHEDULE_GROUP)."""
    return _name("", workflow, index)


def rule_name(workflow: str, index: int) -> str:
    """The EventBridge rule (default bus) of `triggers[index]`."""
    return _name(RULE_PREFIX, workflow, index)


def trigger_resources(definition: WorkflowDefinition) -> list[tuple[str, str]]:
    """(kind, name) of every schedule and rule the workflow has on AWS."""
    return [
        ("schedule", schedule_name(definition.name, i)) for i, _ in schedules.schedule_triggers(definition)
    ] + [("rule", rule_name(definition.name, i)) for i, _ in events.event_triggers(definition)]


class TriggerSwitch:
    """Enables or disables a workflow's schedules and rules (clients: scheduler, events)."""

    def __init__(self, scheduler: Any, events_client: Any, group: str = SCHEDULE_GROUP) -> None:
        self.scheduler = scheduler
        self.events = events_client
        self.group = group

    def set(self, definition: WorkflowDefinition, active: bool) -> list[dict[str, str]]:
        """Set every schedule and rule of the workflow ENABLED or DISABLED (idempotent); what was set."""
        state = "ENABLED" if active else "DISABLED"
        changed = []
        for kind, name in trigger_resources(definition):
            if kind == "schedule":
                current = self.scheduler.get_schedule(Name=name, GroupName=self.group)
                fields = {k: current[k] for k in SCHEDULE_FIELDS if current.get(k) is not None}
                self.scheduler.update_schedule(**(fields | {"GroupName": self.group, "State": state}))
            elif active:
                self.events.enable_rule(Name=name)
            else:
                self.events.disable_rule(Name=name)
            changed.append({"kind": kind, "name": name, "state": state})
        return changed
