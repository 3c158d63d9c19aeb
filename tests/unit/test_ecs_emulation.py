"""The emulator's ECS (flowdeck.local.ecs_tasks): RunTask's errors as Step Functions names them, and
a stopped task's event only when its runner never answered."""

from __future__ import annotations

import multiprocessing
import os
import threading
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
from botocore.exceptions import ClientError
from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEventException
from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
    StateTaskServiceEcs,
)

from flowdeck.local import ecs_tasks
from flowdeck.local.ecs_tasks import LocalTasks, _ForkedTask, _name_run_task_errors, _RunTaskFailures


@pytest.fixture
def named_errors() -> Iterator[None]:
    original = StateTaskServiceEcs._from_error
    _name_run_task_errors()
    yield
    StateTaskServiceEcs._from_error = original  # type: ignore[method-assign]


def error_and_cause(ex: Exception) -> tuple[str | None, str | None] | None:
    state = SimpleNamespace(
        _get_sfn_resource=lambda: "runTask.waitForTaskToken", _get_sfn_resource_type=lambda: "ecs"
    )
    env = SimpleNamespace(next_state_name="build", event_history_context=SimpleNamespace(source_event_id=1))
    failure = StateTaskServiceEcs._from_error(state, env, ex)  # type: ignore[arg-type]
    return FailureEventException(failure).extract_error_cause_pair()


@pytest.mark.usefixtures("named_errors")
def test_a_run_task_that_raised_fails_the_state_with_ecs_exception_and_message() -> None:
    denied = ClientError({"Error": {"Code": "AccessDeniedException", "Message": "not allowed"}}, "RunTask")

    assert error_and_cause(denied) == ("ECS.AccessDeniedException", "not allowed")


@pytest.mark.usefixtures("named_errors")
def test_a_run_task_answered_with_failures_fails_the_state_as_amazon_ecs_unknown() -> None:
    failures = _RunTaskFailures([{"arn": "arn:aws:ecs:...", "reason": "RESOURCE:MEMORY"}])

    assert error_and_cause(failures) == (
        "AmazonECS.Unknown",
        'RunTask failed: [{"arn": "arn:aws:ecs:...", "reason": "RESOURCE:MEMORY"}]',
    )


class Exited:
    """A task process that has ended with `code`."""

    def __init__(self, code: int) -> None:
        self.code = code

    def wait(self, timeout: float | None = None) -> int:
        return self.code


def reaped(tasks: LocalTasks, arn: str, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """The stopped events sent when the task `arn` ends (after the answers given so far)."""
    sent: list[Any] = []
    monkeypatch.setattr(
        ecs_tasks, "_task_stopped_event", lambda backend, task, code: sent.append((task, code))
    )
    task = SimpleNamespace(task_arn=arn, desired_status="RUNNING", stopped_reason="", last_status="RUNNING")
    tasks._reap(None, task, Exited(-9))  # type: ignore[arg-type]
    assert (task.last_status, task.stopped_reason) == (
        "STOPPED",
        "Essential container in task exited (exit code -9)",
    )
    return sent


def test_a_task_that_ends_unanswered_sends_its_stopped_event(monkeypatch: pytest.MonkeyPatch) -> None:
    tasks = LocalTasks(preload=[])
    tasks.unanswered["task-1"] = "token"

    assert [code for _, code in reaped(tasks, "task-1", monkeypatch)] == [-9]


def test_a_task_whose_runner_answered_sends_none_even_when_a_retry_reuses_the_token(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tasks = LocalTasks(preload=[])
    tasks.unanswered["task-1"] = "token"
    tasks.answered("token")
    # moto gives the retry's task the same token: its own answer is still owed.
    tasks.unanswered["task-2"] = "token"

    assert reaped(tasks, "task-1", monkeypatch) == []
    assert tasks.unanswered == {"task-2": "token"}


def exits_with_143() -> None:
    time.sleep(0.3)
    os._exit(143)


def test_a_forked_task_waited_on_by_two_threads_reports_its_exit_code_to_both() -> None:
    # The reaper and a StopTask's kill timer wait at once; each must read 143, not the pipe's end (255).
    process = multiprocessing.get_context("forkserver").Process(target=exits_with_143)
    process.start()
    task = _ForkedTask(process)
    codes: list[int] = []
    waiters = [
        threading.Thread(target=lambda t=timeout: codes.append(task.wait(t))) for timeout in (None, 30.0)
    ]
    for waiter in waiters:
        waiter.start()
    for waiter in waiters:
        waiter.join()

    assert codes == [143, 143]
    assert task.poll() == 143
