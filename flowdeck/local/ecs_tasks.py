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
- It never starts anything: RunTask here starts the task's runner container as a new local process
  (no images locally: the container's `python` is this interpreter), with the environment ECS
  would give it (the task definition's, then the overrides), plus what ECS's task metadata
  endpoint would say (the task's ARN and start). The task is STOPPED when the process ends.

A `python -m MODULE` container is forked from a server process that imported MODULE once (a
multiprocessing forkserver) rather than started cold: still a new process per task, which never
ran anything before, without paying the interpreter's imports each time (they are most of a local
cold start). Locally that stands in for the image being already on the host.
"""

from __future__ import annotations

import functools
import logging
import multiprocessing
import os
import runpy
import signal
import subprocess
import sys
import threading
import time
from typing import Any

from flowdeck.constants import FRESH_RUNNER_CONTAINER

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

    StateTaskServiceEcs._normalise_parameters = normalise_parameters  # type: ignore[method-assign]
    StateTaskServiceEcs._normalise_response = normalise_response  # type: ignore[method-assign]


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
    """A forked task process seen as a Popen (send_signal, poll, wait, kill)."""

    def __init__(self, process: multiprocessing.process.BaseProcess) -> None:
        self.process = process

    def send_signal(self, sig: int) -> None:
        if self.process.pid is not None:
            os.kill(self.process.pid, sig)

    def poll(self) -> int | None:
        return self.process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self.process.join(timeout)
        if self.process.exitcode is None:
            raise subprocess.TimeoutExpired(str(self.process.name), timeout or 0)
        return self.process.exitcode

    def kill(self) -> None:
        self.process.kill()


class LocalTasks:
    """The processes of running tasks, by task ARN."""

    def __init__(self, preload: list[str]) -> None:
        self.processes: dict[str, subprocess.Popen[bytes] | _ForkedTask] = {}
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
        threading.Thread(target=self._reap, args=(task, process), daemon=True, name="ecs-task").start()

    def _reap(self, task: Any, process: subprocess.Popen[bytes] | _ForkedTask) -> None:
        """When the essential container exits, the task stops (as ECS records it)."""
        code = process.wait()
        with self.lock:
            self.processes.pop(task.task_arn, None)
        if task.desired_status != "STOPPED":
            task.stopped_reason = f"Essential container in task exited (exit code {code})"
        task.last_status = task.desired_status = "STOPPED"

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


def _stop_timeout(backend: Any, task: Any) -> int:
    definition = backend.describe_task_definition(task.task_definition_arn)
    timeouts = [c.get("stopTimeout") for c in definition.container_definitions if c.get("stopTimeout")]
    return int(max(timeouts, default=DEFAULT_STOP_TIMEOUT_SECONDS))


def install_ecs_tasks() -> LocalTasks:
    """Patch moto's ECS integration and backend in this (the emulator's) process."""
    from moto.ecs.models import EC2ContainerServiceBackend
    from moto.moto_api import state_manager

    _convert_integration()
    _early_heartbeats()
    state_manager.set_transition(
        model_name="ecs::task", transition={"progression": "manual", "times": _NEVER}
    )
    # The Flowdeck runner, imported once: each task's process is forked from there.
    tasks = LocalTasks(preload=["flowdeck.local.task_preload"])
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
