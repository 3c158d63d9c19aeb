"""A fresh task that stopped before its runner answered: its token is failed with ECS's stop reason."""

from __future__ import annotations

from typing import Any

from flowdeck.control.stopped_tasks import StoppedTask, StoppedTasks, stopped_tasks_pattern
from flowdeck.stores.tasks import TaskTokens
from tests.unit.test_task_tokens import FakeStepFunctions

CLUSTER = "arn:aws:ecs:us-east-1:123456789012:cluster/flowdeck-fresh"
TASK = "arn:aws:ecs:us-east-1:123456789012:task/flowdeck-fresh/abc"


def stopped_event(**detail: Any) -> dict[str, Any]:
    """An "ECS Task State Change" event as ECS sends it for a fresh task (the parts we read)."""
    environment = [
        {"name": "FLOWDECK_FRESH_TOKEN", "value": "token-1"},
        {"name": "FLOWDECK_FRESH_RUN_ID", "value": "run-1"},
        {"name": "FLOWDECK_FRESH_STEP", "value": "build"},
    ]
    return {
        "source": "aws.ecs",
        "detail-type": "ECS Task State Change",
        "detail": {
            "clusterArn": CLUSTER,
            "taskArn": TASK,
            "lastStatus": "STOPPED",
            "stoppedReason": "CannotPullContainerError: pull image manifest has been retried 5 time(s)",
            "overrides": {
                "containerOverrides": [
                    {"name": "step"},
                    {"name": "runner", "environment": environment},
                ]
            },
            "containers": [{"name": "runner"}, {"name": "step", "reason": "CannotPullContainerError"}],
        }
        | detail,
    }


def test_the_rule_matches_only_stopped_tasks_of_the_fresh_cluster() -> None:
    assert stopped_tasks_pattern(CLUSTER) == {
        "source": ["aws.ecs"],
        "detail-type": ["ECS Task State Change"],
        "detail": {"clusterArn": [CLUSTER], "lastStatus": ["STOPPED"]},
    }


def test_a_stopped_task_fails_its_token_with_the_stop_reasons() -> None:
    sfn = FakeStepFunctions()

    assert StoppedTasks(TaskTokens(sfn)).handle(stopped_event()) is True

    assert sfn.calls == [
        (
            "SendTaskFailure",
            {
                "taskToken": "token-1",
                "error": "TaskStopped",
                "cause": "the task of step build stopped before its runner answered: "
                "CannotPullContainerError: pull image manifest has been retried 5 time(s); "
                "step: CannotPullContainerError",
            },
        )
    ]


def test_a_container_exit_code_is_part_of_the_reason() -> None:
    event = stopped_event(
        stoppedReason="Essential container in task exited",
        containers=[{"name": "runner", "exitCode": 137}],
    )
    task = StoppedTask.from_event(event)
    assert task is not None
    assert (task.run_id, task.step, task.task_arn) == ("run-1", "build", TASK)
    assert task.reason == "Essential container in task exited; runner exited with code 137"


def test_a_task_whose_runner_answered_already_is_a_no_op() -> None:
    # Every task stops, those that answered too: Step Functions says the token no longer waits.
    sfn = FakeStepFunctions(error="TaskTimedOut")

    assert StoppedTasks(TaskTokens(sfn)).handle(stopped_event()) is False
    assert [name for name, _ in sfn.calls] == ["SendTaskFailure"]


def test_events_that_are_not_a_stopped_fresh_task_fail_nothing() -> None:
    sfn = FakeStepFunctions()
    handler = StoppedTasks(TaskTokens(sfn))
    no_token = stopped_event(overrides={"containerOverrides": [{"name": "runner", "environment": []}]})

    assert handler.handle(stopped_event(lastStatus="RUNNING")) is False
    assert handler.handle(no_token) is False
    assert handler.handle(stopped_event(overrides={})) is False
    assert handler.handle({"detail": {}}) is False
    assert sfn.calls == []
