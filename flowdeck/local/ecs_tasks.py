"""The emulator's ECS: a fresh step's RunTask starts a local process, StopTask signals it.

Installed in the emulator process (flowdeck.local.emulator), so the ASL that runs on AWS runs here
unchanged. Facts about moto 5.2.5 this works around:

- Its Step Functions ECS integration (`StateTaskServiceEcs`) hands the state's PascalCase parameters
  to boto unconverted and reads the answer in PascalCase without converting it (the base class's
  `_normalise_parameters`/`_normalise_response` are `pass`; getmoto/moto#10076): both are converted
  here with the service model, as Step Functions does.
- Every DescribeTasks advances a task towards STOPPED; the `ecs::task` transition is set to manual,
  so a task runs until its process ends or StopTask stops it.
- It sets a callback's heartbeat up only once the service call has answered, and refuses a beat
  before that (InvalidToken); a runner started inside RunTask beats that early, which AWS accepts.
- It words a RunTask that raised as `States.Runtime` (which no Catch takes) and reads an answer
  with `failures` and no task as a crash: here, as Step Functions does, the first fails the state
  with `ECS.<exception>` and the second with `AmazonECS.Unknown`, with the cause.
- Its SendTaskFailure drops `cause`; the state machine records a stopped task's cause from it.
- It never starts anything: RunTask here starts the task's runner container as a new local process
  (no images locally: the container's `python` is this interpreter), with the environment ECS
  would give it (the task definition's, then the overrides), plus what ECS's task metadata
  endpoint would say (the task's ARN and start). The task is STOPPED when the process ends; when
  its runner had not answered its token by then, an "ECS Task State Change" event (STOPPED, with the
  task's overrides and stop reason) goes to the default event bus, as ECS sends one on AWS.

A `python -m MODULE` container is forked from a server process that imported MODULE once (a
multiprocessing forkserver) rather than started cold: still a new process per task, which never
ran anything before, without paying the interpreter's imports each time (they are most of a local
cold start). Locally that stands in for the image being already on the host.
"""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from flowdeck.constants import ENV_FRESH_TOKEN, FRESH_RUNNER_CONTAINER
from flowdeck.control.stopped_tasks import TASK_STATE_CHANGE

log = logging.getLogger("flowdeck.emulator.ecs")

# What a container gets when its task definition sets no stopTimeout (ECS's default).
DEFAULT_STOP_TIMEOUT_SECONDS = 30
# Never reached: a task only stops when its process ends or StopTask is called.
_NEVER = 10**12


@functools.cache
def _operation(name: str) -> Any:
    """The ECS operation model named like `RunTask` or `run_task`."""
    import botocore.session

    model = botocore.session.get_session().get_service_model("ecs")
    pascal = "".join(part[:1].upper() + part[1:] for part in name.split("_"))
    return model.operation_model(pascal)


def _convert_integration() -> None:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    def normalise_parameters(
        self: Any, parameters: dict[str, Any], boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        action = service_action_name or self.resource.api_action
        self._to_boto_request(parameters, _operation(action).input_shape)

    def normalise_response(
        self: Any, response: Any, boto_service_name: Any = None, service_action_name: Any = None
    ) -> None:
        action = service_action_name or self.resource.api_action
        self._from_boto_response(response, _operation(action).output_shape)
        if response.get("Failures") and not response.get("Tasks"):
            raise _RunTaskFailures(response["Failures"])

    StateTaskServiceEcs._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceEcs._normalise_response = normalise_response  # type: ignore[method-assign]


def _failure(self: Any, env: Any, error: str, cause: str) -> Any:
    """The state's failure as Step Functions words a service integration's error."""
    from moto.stepfunctions.parser.api import HistoryEventType, TaskFailedEventDetails
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import CustomErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import FailureEvent

    # moto's EventDetails is a total TypedDict of every kind of event; it holds only this one.
    details: Any = {
        "taskFailedEventDetails": TaskFailedEventDetails(
            error=error,
            cause=cause,
            resource=self._get_sfn_resource(),
            resourceType=self._get_sfn_resource_type(),
        )
    }
    return FailureEvent(
        env=env,
        error_name=CustomErrorName(error_name=error),
        event_type=HistoryEventType.TaskFailed,
        event_details=details,
    )


class _RunTaskFailures(Exception):
    """RunTask answered with failures and no task."""

    def __init__(self, failures: list[Any]) -> None:
        super().__init__(json.dumps(failures))


def _name_run_task_errors() -> None:
    """RunTask's errors as Step Functions names them: `ECS.<exception>`, `AmazonECS.Unknown`."""
    from botocore.exceptions import ClientError
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service.state_task_service_ecs import (
        StateTaskServiceEcs,
    )

    original = StateTaskServiceEcs._from_error

    def from_error(self: Any, env: Any, ex: Exception) -> Any:
        if isinstance(ex, ClientError):
            error = ex.response.get("Error", {})
            return _failure(
                self, env, f"ECS.{error.get('Code', 'AmazonECSException')}", str(error.get("Message", ""))
            )
        if isinstance(ex, _RunTaskFailures):
            return _failure(self, env, "AmazonECS.Unknown", f"RunTask failed: {ex}")
        return original(self, env, ex)

    StateTaskServiceEcs._from_error = from_error  # type: ignore[method-assign]


def _task_failure_causes() -> None:
    """SendTaskFailure passes its `cause` on to the waiting task, as Step Functions does."""
    from moto.core.responses import EmptyResult
    from moto.stepfunctions.responses import StepFunctionResponse

    def send_task_failure(self: Any) -> Any:
        self.stepfunction_backend.send_task_failure(
            self._get_param("taskToken"), error=self._get_param("error"), cause=self._get_param("cause")
        )
        return EmptyResult()

    StepFunctionResponse.send_task_failure = send_task_failure  # type: ignore[method-assign]


def _early_heartbeats() -> None:
    """A heartbeat for a token whose task is still being started counts as received (AWS takes it)."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint

    original = CallbackEndpoint.notify_heartbeat

    def notify_heartbeat(self: Any) -> bool:
        if self._heartbeat_endpoint is None and self.get_outcome() is None:
            return True  # the heartbeat clock starts when the wait is set up, right after this call
        return bool(original(self))

    CallbackEndpoint.notify_heartbeat = notify_heartbeat  # type: ignore[method-assign]


def _container_environment(container: dict[str, Any], overrides: dict[str, Any]) -> dict[str, str]:
    """The container's environment: its definition's, then the RunTask's overrides for it."""
    env = {e["name"]: e["value"] for e in container.get("environment") or []}
    for override in overrides.get("containerOverrides") or []:
        if override.get("name") == container["name"]:
            env |= {e["name"]: e["value"] for e in override.get("environment") or []}
    return env


def _command(container: dict[str, Any]) -> list[str]:
    command = list(container.get("command") or [])
    if command[:1] == ["python"]:
        command[0] = sys.executable  # no images locally: this interpreter has Flowdeck installed
    return command


def _run_module(module: str, env: dict[str, str]) -> None:
    """In the forked task process: the container's environment, its own session, then the module."""
    os.setsid()
    os.environ.clear()
    # The forkserver is this process's parent: it leaves with the emulator.
    os.environ.update(env | {"FLOWDECK_EXIT_WITH_PARENT": str(os.getppid())})
    runpy.run_module(module, run_name="__main__", alter_sys=True)


class _ForkedTask:
    """A forked task process seen as a Popen (send_signal, poll, wait, kill).

    The reaper and a StopTask's kill timer both wait on it. The forkserver writes the exit code once
    into a pipe: two threads reading it at once leave one with the pipe's end, which multiprocessing
    reports as exit code 255. So the end is awaited on the pipe without reading, and read by one.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process
        self._reading = threading.Lock()

    def send_signal(self, sig: int) -> None:
        if self.process.pid is not None:
            os.kill(self.process.pid, sig)

    def _ended(self, timeout: float | None) -> bool:
        return bool(multiprocessing.connection.wait([self.process.sentinel], timeout))

    def poll(self) -> int | None:
        if not self._ended(0):
            return None
        with self._reading:
            return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended(timeout):
            raise subprocess.TimeoutExpired(str(self.process.name), timeout or 0)
        with self._reading:
            self.process.join()
            code = self.process.exitcode
        if code is None:  # never after join(): Popen's contract is an exit code or TimeoutExpired
            raise subprocess.TimeoutExpired(str(self.process.name), timeout or 0)
        return code

    def kill(self) -> None:
        self.process.kill()


class LocalTasks:
    """The processes of running tasks, by task ARN."""

    def __init__(self, preload: list[str]) -> None:
        self.processes: dict[str, subprocess.Popen[bytes] | _ForkedTask] = {}
        # Task ARN -> the token its runner was given, until an answer to that token arrives.
        self.unanswered: dict[str, str] = {}
        self.lock = threading.Lock()
        self.forks = multiprocessing.get_context("forkserver")
        self.forks.set_forkserver_preload(preload)

    def start(self, backend: Any, task: Any) -> None:
        """Start the task's Flowdeck runner container (a step's own image has no local stand-in: the
        runner then runs the step itself, as it does for a step without an image)."""
        definition = backend.describe_task_definition(task.task_definition_arn)
        container = next(
            (c for c in definition.container_definitions if c["name"] == FRESH_RUNNER_CONTAINER), None
        )
        if container is None or not container.get("command"):
            return
        env = (
            dict(os.environ)
            | _container_environment(container, task.overrides or {})
            | {
                "FLOWDECK_TASK_ARN": task.task_arn,
                "FLOWDECK_TASK_STARTED_AT": repr(time.time()),
                # The task leaves with the emulator, however it ends.
                "FLOWDECK_EXIT_WITH_PARENT": str(os.getpid()),
            }
        )
        command = _command(container)
        process: subprocess.Popen[bytes] | _ForkedTask
        if command[:2] == [sys.executable, "-m"] and len(command) == 3:
            forked = self.forks.Process(target=_run_module, args=(command[2], env), daemon=False)
            forked.start()
            process = _ForkedTask(forked)
        else:
            process = subprocess.Popen(  # noqa: S603 - the task definition's own command, by this interpreter
                command, env=env, stdin=subprocess.DEVNULL, start_new_session=True
            )
        with self.lock:
            self.processes[task.task_arn] = process
            if token := env.get(ENV_FRESH_TOKEN):
                self.unanswered[task.task_arn] = token
        threading.Thread(
            target=self._reap, args=(backend, task, process), daemon=True, name="ecs-task"
        ).start()

    def answered(self, token: str) -> None:
        """An answer to `token` arrived: the tasks given it (moto reuses a token across retries) answered."""
        with self.lock:
            for arn in [arn for arn, given in self.unanswered.items() if given == token]:
                del self.unanswered[arn]

    def _reap(self, backend: Any, task: Any, process: subprocess.Popen[bytes] | _ForkedTask) -> None:
        """When the essential container exits, the task stops (as ECS records it)."""
        code = process.wait()
        with self.lock:
            self.processes.pop(task.task_arn, None)
            unanswered = self.unanswered.pop(task.task_arn, None) is not None
        if task.desired_status != "STOPPED":
            task.stopped_reason = f"Essential container in task exited (exit code {code})"
        task.last_status = task.desired_status = "STOPPED"
        if unanswered:
            # Only then: moto keeps a token across a state's retries, so a late failure for a token
            # already answered could be taken as the next attempt's answer (AWS issues a new one).
            _task_stopped_event(backend, task, code)

    def stop(self, task_arn: str, stop_timeout: int) -> None:
        """SIGTERM now, SIGKILL after the stop timeout, as ECS stops a task's containers."""
        with self.lock:
            process = self.processes.get(task_arn)
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)

        def kill_later() -> None:
            try:
                process.wait(stop_timeout)
            except subprocess.TimeoutExpired:
                process.kill()

        threading.Thread(target=kill_later, daemon=True, name="ecs-stop").start()


def _task_stopped_event(backend: Any, task: Any, exit_code: int) -> None:
    """ECS's "Task State Change" event for a stopped task, on the default bus of the task's region."""
    from moto.events.models import events_backends

    detail = {
        "clusterArn": task.cluster_arn,
        "taskArn": task.task_arn,
        "taskDefinitionArn": task.task_definition_arn,
        "group": task.group,
        "lastStatus": "STOPPED",
        "desiredStatus": "STOPPED",
        "stoppedReason": task.stopped_reason,
        "overrides": task.overrides or {},
        "containers": [{"name": FRESH_RUNNER_CONTAINER, "lastStatus": "STOPPED", "exitCode": exit_code}],
    }
    event = {
        "Source": "aws.ecs",
        "DetailType": TASK_STATE_CHANGE,
        "Detail": json.dumps(detail),
        "Resources": [task.task_arn],
    }
    try:
        events_backends[backend.account_id][backend.region_name].put_events([event])
    except Exception:  # the event is best effort, as the heartbeat timeout still catches the step
        log.exception("task %s: its stopped event was not sent", task.task_arn)


def _answers_seen(tasks: LocalTasks) -> None:
    """Tell `tasks` of every answer to a task token (its runner answered before its process ended)."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackPoolManager

    original = CallbackPoolManager.notify

    def notify(self: Any, callback_id: str, outcome: Any) -> bool:
        delivered = bool(original(self, callback_id, outcome))
        if delivered:
            tasks.answered(callback_id)
        return delivered

    CallbackPoolManager.notify = notify  # type: ignore[method-assign]


def _stop_timeout(backend: Any, task: Any) -> int:
    definition = backend.describe_task_definition(task.task_definition_arn)
    timeouts = [c.get("stopTimeout") for c in definition.container_definitions if c.get("stopTimeout")]
    return int(max(timeouts, default=DEFAULT_STOP_TIMEOUT_SECONDS))


def install_ecs_tasks() -> LocalTasks:
    """Patch moto's ECS integration and backend in this (the emulator's) process."""
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api import state_manager

    _convert_integration()
    _name_run_task_errors()
    _task_failure_causes()
    _early_heartbeats()
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": _NEVER}
    )
    # The Flowdeck runner, imported once: each task's process is forked from there.
    tasks = LocalTasks(preload=["flowdeck.local.task_preload"])
    _answers_seen(tasks)
    original_run, original_stop = EC2ContainerServiceBackend.run_task, EC2ContainerServiceBackend.stop_task

    def run_task(self: EC2ContainerServiceBackend, *args: Any, **kwargs: Any) -> list[Any]:
        started = original_run(self, *args, **kwargs)
        for task in started:
            tasks.start(self, task)
        return started

    def stop_task(self: EC2ContainerServiceBackend, cluster_str: str, task_str: str, reason: str) -> Any:
        task = original_stop(self, cluster_str, task_str, reason)
        tasks.stop(task.task_arn, _stop_timeout(self, task))
        return task

    EC2ContainerServiceBackend.run_task = run_task  # type: ignore[method-assign]
    EC2ContainerServiceBackend.stop_task = stop_task  # type: ignore[method-assign]
    return tasks
