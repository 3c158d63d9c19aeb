"""A fresh step's runner: `python -m flowdeck.runner.fresh`, in a Fargate task started for that step alone.

The state machine's RunTask passes only the task token and the run/step identity (container
overrides hold at most 8,192 characters). The runner reads the rest: the step's spec from the
workflow definition (compiled as the ASL is), the inputs and the steps a retry reuses from the run
record. It heartbeats once before anything else (the cold start is over), then runs the step with
the pool's StepRunner, so the step records, logs, outputs, artifacts, usage, timeouts, cancels and
the answer to the token are exactly a pool step's; its usage says `mode: fresh`.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import sys
import threading
import time
import urllib.request
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck import aws
from flowdeck.catalog import load_definition
from flowdeck.config import Settings, get_settings
from flowdeck.constants import (
    ENV_FRESH_ATTEMPT_BASE,
    ENV_FRESH_RETRY_COUNT,
    ENV_FRESH_RUN_ID,
    ENV_FRESH_STEP,
    ENV_FRESH_TOKEN,
    ENV_FRESH_WORKFLOW,
)
from flowdeck.definition.models import WorkflowDefinition
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.step_runner import StepRunner
from flowdeck.runner.worker import EXIT_WITH_PARENT_ENV, exit_with_parent
from flowdeck.stores.cancels import CANCEL_REQUESTED_AT, CancelRecords
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens
from statemachines.run_step import step_spec, watch_seconds

log = logging.getLogger("flowdeck.fresh")

# Set by ECS in every container of a task: its metadata endpoint (the task's ARN, its pull start).
ECS_METADATA_ENV = "ECS_CONTAINER_METADATA_URI_V4"
# Locally the emulator, which plays ECS, tells the runner the same two facts directly.
ENV_TASK_ARN = "FLOWDECK_TASK_ARN"
ENV_TASK_STARTED_AT = "FLOWDECK_TASK_STARTED_AT"
# How the runner leaves a task stopped by someone else than a cancel (128 + SIGTERM, as a shell says).
STOPPED_FROM_OUTSIDE_EXIT = 143


class FreshTaskError(ValueError):
    """The task lacks what a Flowdeck state machine's RunTask passes."""


@dataclass(frozen=True)
class FreshTask:
    """What the state machine's RunTask told this task: the token and the run/step identity."""

    token: str
    run_id: str
    workflow: str
    step: str
    retry_count: int = 0
    attempt_base: int = 0

    @classmethod
    def from_environ(cls, environ: Mapping[str, str]) -> FreshTask:
        names = (ENV_FRESH_TOKEN, ENV_FRESH_RUN_ID, ENV_FRESH_WORKFLOW, ENV_FRESH_STEP)
        missing = [name for name in names if not environ.get(name)]
        if missing:
            raise FreshTaskError(f"not set: {', '.join(missing)}")
        try:
            retry_count = int(environ.get(ENV_FRESH_RETRY_COUNT) or 0)
            attempt_base = int(environ.get(ENV_FRESH_ATTEMPT_BASE) or 0)
        except ValueError as exc:
            raise FreshTaskError(f"a count is not a number: {exc}") from None
        return cls(
            token=environ[ENV_FRESH_TOKEN],
            run_id=environ[ENV_FRESH_RUN_ID],
            workflow=environ[ENV_FRESH_WORKFLOW],
            step=environ[ENV_FRESH_STEP],
            retry_count=retry_count,
            attempt_base=attempt_base,
        )


def task_identity(environ: Mapping[str, str]) -> tuple[str | None, float | None]:
    """This task's ARN and when it began pulling its image (epoch seconds), as ECS reports them."""
    uri = environ.get(ECS_METADATA_ENV)
    if not uri:
        started = environ.get(ENV_TASK_STARTED_AT)
        return environ.get(ENV_TASK_ARN), float(started) if started else None
    try:
        with urllib.request.urlopen(f"{uri}/task", timeout=2) as answer:  # noqa: S310 - ECS's own endpoint
            metadata = json.load(answer)
    except (OSError, ValueError) as exc:
        log.warning("task metadata unreadable (%s): compute is counted from the runner's start", exc)
        return None, None
    pulled = metadata.get("PullStartedAt")
    started_at = datetime.fromisoformat(pulled.replace("Z", "+00:00")).timestamp() if pulled else None
    return metadata.get("TaskARN"), started_at


def step_message(
    task: FreshTask,
    definition: WorkflowDefinition,
    run: Mapping[str, Any],
    task_arn: str | None,
    task_started_at: float | None,
) -> StepMessage:
    """The message a pool worker would have received for this step, from the definition and the run record."""
    step = definition.step(task.step)
    heartbeat, _ = watch_seconds(step, definition)
    config = definition.runtime_config
    recorded = json.loads(str(run.get("inputs_json") or "{}"))
    return StepMessage(
        token=task.token,
        run_id=task.run_id,
        workflow=task.workflow,
        step=task.step,
        retry_count=task.retry_count,
        attempt_base=task.attempt_base,
        heartbeat_seconds=heartbeat,
        retention_hours=config.retention_hours,
        # As the ASL merges them for a pool step: the run's inputs over the workflow's defaults.
        inputs=definition.input_defaults() | (recorded if isinstance(recorded, dict) else {}),
        spec=StepSpec.model_validate(step_spec(step)),
        max_cost_usd=None if config.max_cost_usd is None else str(config.max_cost_usd),
        reuse=list(run.get("reused") or []),
        mode="fresh",
        task_arn=task_arn,
        task_started_at=task_started_at,
    )


def beside_the_step(settings: Settings) -> Settings:
    """With a step container: scratch space and workspace on the shared volume, where the step sees them."""
    if settings.shim_dir is None:
        return settings
    workspace = settings.shim_dir / "workspace"
    if settings.workspace.is_dir():
        shutil.copytree(settings.workspace, workspace, symlinks=True, dirs_exist_ok=True)
    return settings.model_copy(update={"scratch_dir": settings.shim_dir / "scratch", "workspace": workspace})


def run_fresh_step(settings: Settings, environ: Mapping[str, str], started_at: float) -> bool:
    """Run this task's one step; False when the run no longer waits for it (nothing was run)."""
    task = FreshTask.from_environ(environ)
    settings = beside_the_step(settings)
    sfn = aws.client("stepfunctions", settings)
    # First thing: the heartbeat clock has run since RunTask; this one says the cold start is over.
    # The run record and the definition are read meanwhile; the step starts once the beat landed.
    beat = ThreadPoolExecutor(1, thread_name_prefix="first-beat")
    alive = beat.submit(TaskTokens(sfn).heartbeat, task.token)
    try:
        runner = StepRunner.for_settings(settings, sfn)
        definition = load_definition(settings.workflows_dir, task.workflow)
        run, _, _ = runner.runs.get_run_items(task.run_id)
        task_arn, pulled_at = task_identity(environ)
        message = step_message(task, definition, run or {}, task_arn, pulled_at or started_at)
        if not alive.result():
            log.info("run %s no longer waits for step %s (ended while it started)", task.run_id, task.step)
            return False
        runner.handle(message, waited=0.0)  # the beat above just reset the token's heartbeat clock
    except Exception as exc:
        # Fail the step now rather than leave the run waiting for the heartbeat timeout.
        log.exception("step %s of run %s failed in its runner", task.step, task.run_id)
        why = f"the fresh task's runner failed: {exc.__class__.__name__}"
        TaskTokens(sfn).fail(task.token, "RunnerError", why)
        raise
    finally:
        beat.shutdown()
    return True


def cancel_under_way(settings: Settings, run_id: str) -> bool:
    """Whether the run has a cancel recorded (a cancel and the budget guard record it before StopTask)."""
    run = CancelRecords(RunStore(settings.runs_table, aws.client("dynamodb", settings))).run(run_id)
    return bool(run and run.get(CANCEL_REQUESTED_AT))


def on_stop(settings: Settings, environ: Mapping[str, str]) -> None:
    """SIGTERM (StopTask): a cancel's, or someone else's (an operator, Fargate retiring the host).

    A cancel's: the cancel watch ends the step with its grace period and records it, so the runner
    stays to answer (ECS kills it after the container's stopTimeout). Someone else's: the runner
    leaves at once, so the task stops now and ECS's stopped-task event fails the step with the stop's
    reason (TaskStopped, flowdeck.control.stopped_tasks) rather than after the stop timeout.
    """
    run_id = environ.get(ENV_FRESH_RUN_ID, "")
    try:
        cancelled = not run_id or cancel_under_way(settings, run_id)
    except (ClientError, BotoCoreError) as exc:
        log.warning("task stopping; its run's record is unreadable (%s): the step ends as a cancel says", exc)
        return
    if cancelled:
        log.info("task stopping: the step ends as its cancel says")
        return
    log.warning(
        "task stopped from outside (no cancel of run %s): leaving now, the step fails TaskStopped", run_id
    )
    os._exit(STOPPED_FROM_OUTSIDE_EXIT)


def main() -> None:
    started_at = time.time()
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if parent := os.environ.get(EXIT_WITH_PARENT_ENV):
        exit_with_parent(int(parent))
    settings = get_settings()
    # The record is read off the signal handler's frame: the handler only starts the check.
    signal.signal(
        signal.SIGTERM,
        lambda *_: threading.Thread(target=on_stop, args=(settings, os.environ), daemon=True).start(),
    )
    try:
        run_fresh_step(settings, os.environ, started_at)
    except FreshTaskError as exc:
        log.error("not a Flowdeck fresh task: %s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
