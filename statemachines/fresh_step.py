"""A fresh step: one `ecs:runTask.waitForTaskToken` task that starts a new Fargate task for the step alone.

The task's runner container (flowdeck.runner.fresh) answers the token exactly as a pool worker
does; the run_step fragment wraps this task with the same heartbeat, timeouts, retries, pause on
failure and lost-runner record as a pool step. Container overrides carry only the token and the
run/step identity (AWS allows 8,192 characters): the runner reads inputs from the run record.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from flowdeck.constants import (
    ASL_FRESH_CLUSTER,
    ASL_FRESH_PUBLIC_IP,
    ASL_FRESH_SECURITY_GROUP,
    ASL_FRESH_SUBNETS,
    ASL_FRESH_TASK_PREFIX,
    ENV_FRESH_ATTEMPT_BASE,
    ENV_FRESH_RETRY_COUNT,
    ENV_FRESH_RUN_ID,
    ENV_FRESH_STEP,
    ENV_FRESH_TOKEN,
    ENV_FRESH_WORKFLOW,
    FRESH_GROUP_PREFIX,
    FRESH_RUNNER_CONTAINER,
    TASK_STOPPED,
)
from flowdeck.definition.models import Step, WorkflowDefinition
from statemachines.asl import intrinsic_string

RUN_TASK_AND_WAIT = "arn:aws:states:::ecs:runTask.waitForTaskToken"
# A fresh step whose runner never answered, for a reason known at once: its task stopped before the
# runner answered (flowdeck.control.stopped_tasks), or RunTask failed. Step Functions names RunTask's
# exceptions `ECS.<exception>` and a RunTask answer with `failures` `AmazonECS.Unknown`; ErrorEquals
# has no prefix match, so each is listed. Their record is the error and cause, not WorkerLost.
FRESH_START_ERRORS = [
    TASK_STOPPED,
    "AmazonECS.Unknown",
    "ECS.AmazonECSException",
    "ECS.AccessDeniedException",
    "ECS.BlockedException",
    "ECS.ClientException",
    "ECS.ClusterNotFoundException",
    "ECS.ConflictException",
    "ECS.InvalidParameterException",
    "ECS.LimitExceededException",
    "ECS.PlatformTaskDefinitionIncompatibilityException",
    "ECS.PlatformUnknownException",
    "ECS.SdkClientException",
    "ECS.ServerException",
    "ECS.ThrottlingException",
    "ECS.UnsupportedFeatureException",
]
# Once per run, after its start is recorded: which fresh steps a retry reuses ($.reusing.p<index>),
# so each such step's Choice skips its task (a reused step must not start a billed Fargate task).
REUSED_FRESH_STEPS = "ReusedFreshSteps"
REUSING = "$.reusing"
# What ECS allows in a RunTask's overrides, all containers together.
MAX_OVERRIDES_CHARS = 8192
# Time a new task may take to start (placement, image pull, the runner's first heartbeat) on top
# of the workflow's heartbeat: a cold start is not a lost runner.
COLD_START_SECONDS = 300


@dataclass(frozen=True)
class FreshTaskShape:
    """What one fresh task definition is made of: the step's image (None: the runner's) and size."""

    image: str | None
    cpu: int
    memory: int

    @property
    def key(self) -> str:
        """A stable short name for the pair, used in placeholders and construct ids."""
        text = f"{self.image or ''}|{self.cpu}|{self.memory}"
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @property
    def placeholder(self) -> str:
        """The ASL substitution name of this shape's task definition ARN."""
        return ASL_FRESH_TASK_PREFIX + self.key


def shape_of(step: Step) -> FreshTaskShape:
    return FreshTaskShape(step.image, step.resources.cpu, step.resources.memory)


def fresh_shapes(definitions: list[WorkflowDefinition]) -> dict[str, FreshTaskShape]:
    """One task definition per distinct image/resources pair of every fresh step, by key."""
    shapes = [shape_of(step) for definition in definitions for step in definition.fresh_steps()]
    return {shape.key: shape for shape in sorted(shapes, key=lambda s: s.key)}


def _env(name: str, value: str, path: bool = False) -> dict[str, str]:
    return {"Name": name, "Value.$" if path else "Value": value}


def fresh_task(step: Step, definition: WorkflowDefinition) -> dict[str, Any]:
    """The RunTask call: Fargate, awsvpc, the step's task definition, the token and identity as env."""
    environment = [
        _env(ENV_FRESH_TOKEN, "$$.Task.Token", path=True),
        _env(ENV_FRESH_RUN_ID, "$$.Execution.Name", path=True),
        _env(ENV_FRESH_WORKFLOW, definition.name),
        _env(ENV_FRESH_STEP, step.id),
        # Environment values are strings: the retry count is formatted.
        _env(ENV_FRESH_RETRY_COUNT, "States.Format('{}', $$.State.RetryCount)", path=True),
    ]
    return {
        "Cluster": "${" + ASL_FRESH_CLUSTER + "}",
        "TaskDefinition": "${" + shape_of(step).placeholder + "}",
        "LaunchType": "FARGATE",
        # Every task of a run in one group: a cancel finds the run's tasks, even those still starting.
        "Group.$": f"States.Format('{FRESH_GROUP_PREFIX}{{}}', $$.Execution.Name)",
        "NetworkConfiguration": {
            "AwsvpcConfiguration": {
                "Subnets.$": "States.StringSplit('${" + ASL_FRESH_SUBNETS + "}', ',')",
                "SecurityGroups": ["${" + ASL_FRESH_SECURITY_GROUP + "}"],
                "AssignPublicIp": "${" + ASL_FRESH_PUBLIC_IP + "}",
            }
        },
        "Overrides": {"ContainerOverrides": [{"Name": FRESH_RUNNER_CONTAINER, "Environment": environment}]},
    }


def pass_attempt_base(parameters: dict[str, Any], path: str) -> None:
    """Tell the runner the attempts recorded before a person chose Retry step (pause on failure)."""
    if "MessageBody" in parameters:  # a pool step's message
        parameters["MessageBody"]["attempt_base.$"] = path
        return
    runner = parameters["Overrides"]["ContainerOverrides"][0]
    runner["Environment"].append(_env(ENV_FRESH_ATTEMPT_BASE, f"States.Format('{{}}', {path})", path=True))


def reuse_key(step: Step, definition: WorkflowDefinition) -> str:
    """Where a fresh step's "reused by this retry" flag lives: $.reusing.p<index> (ids may hold '-')."""
    return f"p{definition.steps.index(step)}"


def reused_fresh_steps_state(definition: WorkflowDefinition, next_name: str) -> dict[str, Any]:
    """One Pass per run: for each fresh step, whether the retry's reuse list ($.meta.reuse) names it."""
    flags = {
        f"{reuse_key(step, definition)}.$": f"States.ArrayContains($.meta.reuse, {intrinsic_string(step.id)})"
        for step in definition.fresh_steps()
    }
    return {"Type": "Pass", "Parameters": flags, "ResultPath": REUSING, "Next": next_name}


def reuse_choice_name(step: Step) -> str:
    """The state a fresh step is entered by: its reuse check, before its task."""
    return f"{step.id}:Reused?"


def reuse_choice(step: Step, definition: WorkflowDefinition, reused_next: str) -> dict[str, Any]:
    """A reused fresh step goes on at once, as a pool worker answers a reused step; else to its task.

    Its record was written by the retry (flowdeck.control.retry), so nothing is recorded here.
    """
    flag = f"{REUSING}.{reuse_key(step, definition)}"
    return {
        "Type": "Choice",
        "Comment": f"step {step.id} reused by this retry: no task",
        "Choices": [{"Variable": flag, "BooleanEquals": True, "Next": reused_next}],
        "Default": step.id,
    }
