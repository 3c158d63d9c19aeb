"""Run one step message end to end: record the start, run the process or notify, record, answer."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck import aws
from flowdeck.clock import now_iso
from flowdeck.config import Settings
from flowdeck.constants import ATTEMPT_PREFIX, HEARTBEAT_EVERY_SECONDS, WORKER_STOPPED, WORKER_STOPPED_RETRIES
from flowdeck.control.cancelling import CANCELLED_ERROR
from flowdeck.costs.calculator import CostCalculator, load_calculator
from flowdeck.costs.models import StepUsage
from flowdeck.expressions import evaluate_condition, render_template
from flowdeck.messages import StepMessage, StepResult
from flowdeck.runner import artifacts as step_artifacts
from flowdeck.runner.budget import BUDGET_EXCEEDED, BudgetGuard, budget_cause
from flowdeck.runner.cancel_watch import CancelWatch
from flowdeck.runner.heartbeat import Heartbeat
from flowdeck.runner.logs import LogWriter
from flowdeck.runner.process import (
    Launcher,
    LineSink,
    ProcessOutcome,
    launch_local,
    prepare_scratch,
    read_outputs,
    run_process,
    step_environment,
)
from flowdeck.runner.shim import ShimLauncher
from flowdeck.runner.usage import Budget, NoBudget, UsageRecorder
from flowdeck.stores.artifacts import ArtifactStore, s3_client
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import TaskTokens

log = logging.getLogger("flowdeck.worker")

# A step handed back by a stopping worker gets at most this long between SIGTERM and SIGKILL (or its
# own grace_period if shorter): the worker must answer before ECS's stopTimeout ends.
HANDBACK_GRACE_SECONDS = 10.0


class StepRunner:
    """Runs one step message end to end: record, execute, report."""

    def __init__(
        self,
        settings: Settings,
        runs: RunStore,
        sfn: Any,
        artifacts: ArtifactStore | None = None,
        logs: LogStore | None = None,
        budget: Budget | None = None,
        calculator: CostCalculator | None = None,
        launch: Launcher = launch_local,
    ) -> None:
        self.settings = settings
        # How the step's process starts: a local process group, or in the step's own container.
        self.launch = launch
        # Told the run's cost after each usage flush; may stop the step (the budget guard).
        self.budget: Budget = budget or NoBudget()
        self.calculator = calculator or load_calculator(settings.cost_calculator, settings.rate_card)
        # The usage recorder of each running attempt, until its finish adds the last delta to the run.
        self.recorders: dict[tuple[str, str, int], UsageRecorder] = {}
        self.runs = runs
        self.tokens = TaskTokens(sfn)
        # Where step output goes (the logs table); without one, only a sink handed to handle() sees it.
        self.logs = logs
        self.artifacts = artifacts or ArtifactStore(settings.artifacts_bucket, s3_client(settings))
        # Small I/O that can overlap the critical path of a step (reads beside writes).
        self.io = ThreadPoolExecutor(8, thread_name_prefix="io")
        # Set when the worker is stopping and hands back the steps it still runs (hand_back()).
        self.handing_back = threading.Event()
        # The stop and kill events of each running process, so hand_back() can end them.
        self._running: dict[tuple[str, str, int], tuple[threading.Event, threading.Event]] = {}
        self._running_lock = threading.Lock()

    @classmethod
    def for_settings(cls, settings: Settings, sfn: Any) -> StepRunner:
        """A runner wired to the configured table, logs, artifacts and budget guard (one fresh task)."""
        artifacts = ArtifactStore(settings.artifacts_bucket, s3_client(settings))
        runs_client = aws.client("dynamodb", settings)
        return cls(
            settings,
            RunStore(settings.runs_table, runs_client, artifacts=artifacts),
            sfn,
            artifacts,
            logs=LogStore(settings.logs_table, aws.client("dynamodb", settings, validate=False)),
            budget=BudgetGuard.for_settings(settings, runs_client, sfn),
            launch=ShimLauncher(settings.shim_dir) if settings.shim_dir is not None else launch_local,
        )

    @staticmethod
    def context(message: StepMessage, earlier: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """What conditions and templates read: inputs, earlier steps' outputs, the run."""
        return {
            "inputs": message.inputs,
            "steps": {step_id: {"outputs": out} for step_id, out in earlier.items()},
            "run": {"id": message.run_id, "workflow": message.workflow, "attempt": message.attempt},
        }

    def handle(
        self, message: StepMessage, sink: LineSink | None = None, waited: float | None = None
    ) -> StepResult | None:
        """Run the step once; None when this delivery is a duplicate of one already taken.

        Output goes to `sink` when given, else to the logs table through a LogWriter. `waited`: the
        seconds since the message was sent (the token's heartbeat clock), None when not known.
        """
        if message.step in message.reuse:
            self.answer_reused(message)
            return None
        started_at = now_iso()
        spec = message.spec
        # Earlier outputs are read while the start is recorded, unless a condition needs them first.
        pending_outputs = self.io.submit(self.runs.step_outputs, message.run_id)
        status = "running"
        condition_error = None
        if spec.condition:
            try:
                if not evaluate_condition(spec.condition, self.context(message, pending_outputs.result())):
                    status = "skipped"
            except ValueError as exc:
                condition_error = str(exc)
        fields = {"status": status, "started_at": started_at, "ended_at": None, "error": None, "cause": None}
        if message.task_arn is not None:
            # A fresh step's own task, on the attempt: a cancel stops it, a person can find it in ECS.
            fields["task_arn"] = message.task_arn
        started, not_cancelled = self.runs.start_attempt_unless_cancelled(
            message.run_id, message.step, message.token, message.attempt, fields
        )
        if started is None:
            return None
        writer = LogWriter.for_step(self.logs, message) if sink is None and self.logs is not None else None
        output: LineSink = sink or writer or (lambda stream, text: None)
        # One heartbeat from the start record to the answer: storing a large log backlog after the
        # process may take a while too.
        with Heartbeat(self.tokens, message.token, self.heartbeat_every(message), waited) as beat:
            try:
                if condition_error is not None:
                    result = StepResult(
                        status="failed",
                        error="ConditionError",
                        cause=condition_error,
                        started_at=started_at,
                        ended_at=now_iso(),
                    )
                elif status == "skipped":
                    result = StepResult(status="skipped", started_at=started_at, ended_at=now_iso())
                elif spec.kind == "notify":
                    result = self.notify(message, pending_outputs.result(), started_at, output)
                else:
                    earlier = pending_outputs.result()
                    result = self.run(message, earlier, started_at, output, beat, started, not_cancelled)
            finally:
                if writer is not None:
                    writer.close()  # every line is stored before the end is recorded: a finished log is whole
        return self.finish(message, started, result)

    def answer_reused(self, message: StepMessage) -> None:
        """A retry took this step over from an earlier run (its record is written): just move on."""
        if not self.tokens.succeed(message.token, {"status": "reused"}):
            log.info("run %s no longer waits for reused step %s", message.run_id, message.step)

    @staticmethod
    def heartbeat_every(message: StepMessage) -> float:
        return min(HEARTBEAT_EVERY_SECONDS, message.heartbeat_seconds / 3)

    def notify(
        self, message: StepMessage, earlier: dict[str, dict[str, Any]], started_at: str, sink: LineSink
    ) -> StepResult:
        notify = message.spec.notify or {}
        text = render_template(notify.get("message", ""), self.context(message, earlier))
        targets = [t for t in [notify.get("slack"), *notify.get("email", [])] if t]
        sink("stdout", f"notify {', '.join(targets) or '(no channel)'}: {text}")
        return StepResult(
            status="succeeded",
            outputs={"message": text, "targets": targets},
            started_at=started_at,
            ended_at=now_iso(),
        )

    def run(
        self,
        message: StepMessage,
        earlier: dict[str, dict[str, Any]],
        started_at: str,
        sink: LineSink,
        beat: Heartbeat,
        started: dict[str, Any] | None = None,
        not_cancelled: bool = False,
    ) -> StepResult:
        """Run the step's process; `not_cancelled`: its start record checked the run's cancel already."""
        spec = message.spec
        scratch = prepare_scratch(self.settings.scratch_dir, message, self.settings.workspace)
        argv: list[str] | str = spec.command if spec.command else (spec.run or "")
        with CancelWatch(self.runs, message.run_id, beat.gone, checked=not_cancelled) as watch:
            usage = self.prepare(message, scratch, sink, beat.gone, started)
            with self._held(message, beat.gone, watch.kill):
                outcome = (
                    ProcessOutcome(exit_code=None, timed_out=False, stopped=True, seconds=0.0)
                    # Cancelled or handed back before it started: never start the process.
                    if watch.cancelled or self.handing_back.is_set()
                    else run_process(
                        argv,
                        step_environment(message, earlier, scratch),
                        scratch / "work",
                        spec.timeout,
                        sink,
                        beat.gone,
                        grace=spec.grace_period,
                        kill=watch.kill,
                        launch=self.launch,
                    )
                )
            ended = step_artifacts.now()
            step_usage, step_cost = usage.close(outcome.seconds)
            # Uploaded before the end is recorded and answered (failures too: a failing test's report
            # matters most), so the run never moves on before its artifacts exist.
            uploaded = (
                {}
                if outcome.stopped
                else step_artifacts.upload(
                    self.artifacts, message, scratch / "work", ended, sink, self.settings.workspace
                )
            )
        base = {
            **uploaded,
            "started_at": started_at,
            "ended_at": ended.isoformat(),
            "exit_code": outcome.exit_code,
            "process_seconds": round(outcome.seconds, 6),
            "usage": step_usage.model_dump(mode="json"),
            "cost_usd": step_cost,
        }
        return self.outcome_result(message, outcome, watch, scratch / "outputs.json", base)

    @contextmanager
    def _held(self, message: StepMessage, stop: threading.Event, kill: threading.Event) -> Iterator[None]:
        """The step's process can be ended by hand_back() while the block runs."""
        key = (message.run_id, message.step, message.attempt)
        with self._running_lock:
            self._running[key] = (stop, kill)
        try:
            yield
        finally:
            with self._running_lock:
                self._running.pop(key, None)

    def hand_back(self) -> None:
        """End every running step's process (SIGTERM, SIGKILL after a short grace) as handed back."""
        self.handing_back.set()
        with self._running_lock:
            running = list(self._running.values())
        for stop, kill in running:
            stop.set()
            timer = threading.Timer(HANDBACK_GRACE_SECONDS, kill.set)
            timer.daemon = True
            timer.start()

    def prepare(
        self,
        message: StepMessage,
        scratch: Path,
        sink: LineSink,
        gone: threading.Event,
        started: dict[str, Any] | None,
    ) -> UsageRecorder:
        """Before the process: its usage recorder (started), and the artifacts it downloads."""
        # `gone` ends the process: set by a gone token, the budget guard after a flush, or a cancel.
        usage = UsageRecorder(
            message,
            scratch / "usage.jsonl",
            sink,
            self.runs,
            self.calculator,
            self.settings.region,
            self.budget,
            gone,
        )
        if (message.spec.artifacts or {}).get("download"):
            step_items = self.runs.get_run_items(message.run_id)[1]
            step_artifacts.download(self.artifacts, message, step_items, scratch / "artifacts", sink)
        if started is not None:
            self.recorders[(message.run_id, message.step, message.attempt)] = usage
            usage.start(started)
        return usage

    def outcome_result(
        self,
        message: StepMessage,
        outcome: ProcessOutcome,
        watch: CancelWatch,
        outputs_file: Path,
        base: dict[str, Any],
    ) -> StepResult:
        """How the process ended as a step result: stopped (budget, cancel, gone), timed out, failed, done."""
        spec = message.spec
        if outcome.stopped and (over := budget_cause(self.budget, message)) is not None:
            # Stopped by the budget guard, which recorded the run cancelled: the step is cancelled too.
            return StepResult(status="cancelled", error=BUDGET_EXCEEDED, cause=over, **base)
        if outcome.stopped and watch.cancelled:
            return StepResult(status="cancelled", error=CANCELLED_ERROR, cause=watch.reason, **base)
        if outcome.stopped and self.handing_back.is_set():
            return StepResult(
                status="failed",
                error=WORKER_STOPPED,
                cause="the worker was told to stop (ECS scale-in or deploy) before the step ended; "
                "the step runs again on another worker",
                **base,
            )
        if outcome.stopped:
            return StepResult(
                status="cancelled", error="Cancelled", cause="the run no longer waits for this step", **base
            )
        if outcome.timed_out:
            return StepResult(
                status="failed",
                error="StepTimeout",
                cause=f"step {message.step} ran past its timeout of {spec.timeout}s",
                **base,
            )
        if outcome.exit_code != 0:
            last = next((line for line in reversed(outcome.stderr_tail) if line.strip()), "")
            cause = f"exit code {outcome.exit_code}" + (f": {last}" if last else "")
            return StepResult(status="failed", error="StepFailed", cause=cause, **base)
        try:
            outputs = read_outputs(outputs_file)
        except (ValueError, UnicodeDecodeError) as exc:
            return StepResult(
                status="failed", error="InvalidOutputs", cause=f"FLOWDECK_OUTPUTS: {exc}", **base
            )
        return StepResult(status="succeeded", outputs=outputs, **base)

    def record_final_usage(self, message: StepMessage, result: StepResult, recorded: bool) -> None:
        """Add what the last flush did not to the run's totals, then tell the budget guard."""
        recorder = self.recorders.pop((message.run_id, message.step, message.attempt), None)
        if recorder is None or not recorded:
            return
        try:
            usage = StepUsage.model_validate(result.usage)
            recorder.add_to_run(usage, result.cost_usd)
        except (ClientError, BotoCoreError) as exc:
            # The step's own record holds its usage; only the run's running total misses this delta.
            log.warning("run %s: step %s usage not added to the run: %s", message.run_id, message.step, exc)

    @staticmethod
    def retried(message: StepMessage, started: dict[str, Any], result: StepResult) -> bool:
        """Whether the state machine runs a failed step again: its own retries, or a hand-back's.

        Step Functions counts every retry of the state in one RetryCount, but each retrier (the
        hand-back's, the step's own) has its own MaxAttempts: the earlier attempts' errors say which.
        """
        earlier = range(message.attempt_base + 1, message.attempt)
        handed_back = sum(
            1 for n in earlier if (started.get(f"{ATTEMPT_PREFIX}{n}") or {}).get("error") == WORKER_STOPPED
        )
        if result.error == WORKER_STOPPED:
            return handed_back < WORKER_STOPPED_RETRIES
        own_retries = message.retry_count - handed_back
        return own_retries + 1 < message.spec.max_attempts

    def finish(self, message: StepMessage, started: dict[str, Any], result: StepResult) -> StepResult:
        """Record the end, then answer the state machine (so the record is final before the run moves)."""
        retrying = result.status == "failed" and self.retried(message, started, result)
        summary = result.outputs.get("summary") if isinstance(result.outputs.get("summary"), str) else None
        attempt_fields: dict[str, Any] = {
            "status": result.status,
            "ended_at": result.ended_at,
            "error": result.error,
            "cause": (result.cause or "")[:2000] or None,
            "exit_code": result.exit_code,
            "process_seconds": result.process_seconds,
            "summary": summary,
        }
        # The attempt keeps its own outcome while the step itself waits for a retry (pending).
        fields = attempt_fields | {"status": "pending" if retrying else result.status}
        if result.artifacts or result.artifact_warnings:
            fields |= {"artifacts": result.artifacts, "artifact_warnings": result.artifact_warnings}
        # Large outputs are kept in S3 and referenced, never carried whole in the record or the state.
        outputs = (
            step_artifacts.offload_outputs(self.artifacts, message, result.outputs)
            if result.status == "succeeded" and result.outputs
            else result.outputs
        )
        # Outputs are published beside the step's record, and both land before the run moves on.
        publishing = (
            self.io.submit(self.runs.publish_outputs, message.run_id, message.step, outputs)
            if result.status == "succeeded" and result.outputs
            else None
        )
        if result.usage is not None:
            # On the attempt too: a retry starts a fresh step record, and each attempt's usage counts.
            usage_fields = {"usage": result.usage, "cost_usd": format(result.cost_usd, "f")}
            fields |= usage_fields
            attempt_fields |= usage_fields
        recorded = self.runs.finish_attempt(started, fields, attempt_fields)
        if result.usage is not None:
            self.record_final_usage(message, result, recorded)
        if publishing is not None:
            publishing.result()
        if not recorded:
            log.warning(
                "step %s of run %s was recorded lost meanwhile; its late end is dropped",
                message.step,
                message.run_id,
            )
        self.answer(message, result, outputs)
        return result

    def answer(self, message: StepMessage, result: StepResult, outputs: dict[str, Any]) -> None:
        """Tell the state machine how the step ended (a token no longer waiting is fine)."""
        # The last usage may have passed the budget after the step ended: the run was cancelled, so
        # it must not move on. Failing the token also lands the emulator's StopExecution.
        late = budget_cause(self.budget, message)  # read either way: the guard forgets it then
        over = (result.cause if result.error == BUDGET_EXCEEDED else None) or late
        delivered = True
        if over is not None:
            delivered = self.tokens.fail(message.token, BUDGET_EXCEEDED, over)
        elif result.status in ("succeeded", "skipped"):
            delivered = self.tokens.succeed(message.token, {"outputs": outputs, "status": result.status})
        elif result.status == "cancelled":
            # Answered so the run's StopExecution lands (the emulator waits for the callback).
            delivered = self.tokens.fail(message.token, result.error or CANCELLED_ERROR, result.cause or "")
        elif result.status == "failed":
            delivered = self.tokens.fail(message.token, result.error or "StepFailed", result.cause or "")
        if not delivered:
            log.info("run %s no longer waits for step %s", message.run_id, message.step)
