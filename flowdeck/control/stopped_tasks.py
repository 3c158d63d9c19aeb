"""A fresh step's task that stopped before its runner answered: fail its token at once (TaskStopped).

ECS sends a "Task State Change" event for every task that stops; an EventBridge rule on the fresh
tasks' cluster (stacks/fresh.py; locally flowdeck.local.ecs_tasks and flowdeck.local.event_rules)
hands it here. The event carries the task's container overrides, so the token and the run/step
identity are read from it (no DescribeTasks). A task whose runner answered already stops too: its
token no longer waits, and failing it is a no-op (Step Functions answers TaskTimedOut/InvalidToken).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from flowdeck.constants import (
    ENV_FRESH_RUN_ID,
    ENV_FRESH_STEP,
    ENV_FRESH_TOKEN,
    FRESH_RUNNER_CONTAINER,
    TASK_STOPPED,
)
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.fresh")

TASK_STATE_CHANGE = "ECS Task State Change"


def stopped_tasks_pattern(cluster_arn: str) -> dict[str, Any]:
    """The EventBridge pattern of the fresh cluster's tasks that stopped (the same on AWS and locally)."""
    return {
        "source": ["aws.ecs"],
        "detail-type": [TASK_STATE_CHANGE],
        "detail": {"clusterArn": [cluster_arn], "lastStatus": ["STOPPED"]},
    }


def stop_reason(detail: dict[str, Any]) -> str:
    """Why the task stopped, as ECS says it: the task's reason, then each container's."""
    reasons = [str(detail.get("stoppedReason") or "the task stopped")]
    for container in detail.get("containers") or []:
        name = container.get("name", "container")
        if container.get("reason"):
            reasons.append(f"{name}: {container['reason']}")
        elif container.get("exitCode") is not None:
            reasons.append(f"{name} exited with code {container['exitCode']}")
    return "; ".join(reasons)


@dataclass(frozen=True)
class StoppedTask:
    """A stopped fresh task: the token its runner was given, whose step it ran, and why it stopped."""

    task_arn: str
    token: str
    run_id: str
    step: str
    reason: str

    @classmethod
    def from_event(cls, event: dict[str, Any]) -> StoppedTask | None:
        """The task of a "Task State Change" event; None when it did not stop or is no fresh step's."""
        detail = event.get("detail") or {}
        if detail.get("lastStatus") != "STOPPED":
            return None
        env: dict[str, str] = {}
        for override in (detail.get("overrides") or {}).get("containerOverrides") or []:
            if override.get("name") == FRESH_RUNNER_CONTAINER:
                env = {e.get("name", ""): e.get("value", "") for e in override.get("environment") or []}
        if not env.get(ENV_FRESH_TOKEN):
            return None
        return cls(
            task_arn=str(detail.get("taskArn", "")),
            token=env[ENV_FRESH_TOKEN],
            run_id=env.get(ENV_FRESH_RUN_ID, ""),
            step=env.get(ENV_FRESH_STEP, ""),
            reason=stop_reason(detail),
        )


class StoppedTasks:
    """Fails the token of a fresh task that stopped without its runner answering."""

    def __init__(self, tokens: TaskTokens) -> None:
        self.tokens = tokens

    def handle(self, event: dict[str, Any]) -> bool:
        """True when the step was still waiting and is now failed with TaskStopped."""
        task = StoppedTask.from_event(event)
        if task is None:
            return False
        cause = f"the task of step {task.step} stopped before its runner answered: {task.reason}"
        failed = self.tokens.fail(task.token, TASK_STOPPED, cause)
        if failed:
            log.warning(
                "run %s: step %s failed: task %s stopped (%s)",
                task.run_id,
                task.step,
                task.task_arn,
                task.reason,
            )
        return failed
