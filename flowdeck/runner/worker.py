"""Pool worker: take step messages from the steps queue, run them, answer the state machine.

The same entry point runs as the ECS Fargate service on AWS and as local processes in the
embedded local stack: `python -m flowdeck.runner.worker`.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError
from pydantic import ValidationError

from flowdeck import aws
from flowdeck.config import Settings, get_settings
from flowdeck.constants import HEARTBEAT_EVERY_SECONDS
from flowdeck.control.cancelling import CANCELLED_ERROR
from flowdeck.costs.calculator import CostCalculator, load_calculator
from flowdeck.costs.models import StepUsage
from flowdeck.expressions import evaluate_condition, render_template
from flowdeck.runner import artifacts as step_artifacts
from flowdeck.runner.budget import BUDGET_EXCEEDED, BudgetGuard, budget_cause
from flowdeck.runner.cancel_watch import CancelWatch
from flowdeck.runner.cleanup import CLEANUP_TYPE, CleanupMessage, CleanupRunner, QueueLease, message_type
from flowdeck.runner.logs import LogWriter
from flowdeck.runner.messages import StepMessage, StepResult, WaitMessage
from flowdeck.runner.pause import WAIT_MESSAGE_TYPE, PauseRecorder
from flowdeck.runner.supervisor import (
    LineSink,
    ProcessOutcome,
    now_iso,
    prepare_scratch,
    read_outputs,
    run_process,
    step_environment,
)
from flowdeck.runner.usage import Budget, NoBudget, UsageRecorder
from flowdeck.stores.artifacts import ArtifactStore, s3_client
from flowdeck.stores.logs import LogStore
from flowdeck.stores.runs import RunStore
from flowdeck.stores.tasks import CAUSE_LIMIT, TOKEN_GONE

log = logging.getLogger("flowdeck.worker")

MESSAGE_VISIBILITY_SECONDS = 5
# Set by the local stack: the worker exits when that process is gone.
EXIT_WITH_PARENT_ENV = "FLOWDECK_EXIT_WITH_PARENT"


class Heartbeat:
    """Keeps the task token alive; notices when the execution no longer wants the step."""

    def __init__(self, sfn: Any, token: str, every: float) -> None:
        self.sfn = sfn
        self.token = token
        self.every = every
        self.gone = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _beat(self) -> None:
        while not self._done.wait(self.every):
            try:
                self.sfn.send_task_heartbeat(taskToken=self.token)
            except ClientError as exc:
                if exc.response["Error"]["Code"] in TOKEN_GONE:
                    self.gone.set()
                    return
                log.warning("heartbeat failed: %s", exc.response["Error"]["Code"])
            except BotoCoreError as exc:
                log.warning("heartbeat failed: %s", exc.__class__.__name__)


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
    ) -> None:
        self.settings = settings
        # Told the run's cost after each usage flush; may stop the step (the budget guard).
        self.budget: Budget = budget or NoBudget()
        self.calculator = calculator or load_calculator(settings.cost_calculator, settings.rate_card)
        # The usage recorder of each running attempt, until its finish adds the last delta to the run.
        self.recorders: dict[tuple[str, str, int], UsageRecorder] = {}
        self.runs = runs
        self.sfn = sfn
        # Where step output goes (the logs table); without one, only a sink handed to handle() sees it.
        self.logs = logs
        self.artifacts = artifacts or ArtifactStore(settings.artifacts_bucket, s3_client(settings))
        # Small I/O that can overlap the critical path of a step (reads beside writes).
        self.io = ThreadPoolExecutor(8, thread_name_prefix="io")

    @staticmethod
    def context(message: StepMessage, earlier: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """What conditions and templates read: inputs, earlier steps' outputs, the run."""
        return {
            "inputs": message.inputs,
            "steps": {step_id: {"outputs": out} for step_id, out in earlier.items()},
            "run": {"id": message.run_id, "workflow": message.workflow, "attempt": message.attempt},
        }

    def handle(self, message: StepMessage, sink: LineSink | None = None) -> StepResult | None:
        """Run the step once; None when this delivery is a duplicate of one already taken.

        Output goes to `sink` when given, else to the logs table through a LogWriter.
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
        started = self.runs.start_attempt(
            message.run_id, message.step, message.token, message.attempt, fields
        )
        if started is None:
            return None
        writer = LogWriter.for_step(self.logs, message) if sink is None and self.logs is not None else None
        output: LineSink = sink or writer or (lambda stream, text: None)
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
                result = self.run(message, pending_outputs.result(), started_at, output, started)
        finally:
            if writer is not None:
                # Every line is stored before the end is recorded: a finished step's log is complete.
                # Heartbeats go on meanwhile, as storing a large backlog may take a while.
                with Heartbeat(self.sfn, message.token, self.heartbeat_every(message)):
                    writer.close()
        return self.finish(message, started, result)

    def answer_reused(self, message: StepMessage) -> None:
        """A retry took this step over from an earlier run (its record is written): just move on."""
        try:
            self.sfn.send_task_success(taskToken=message.token, output=json.dumps({"status": "reused"}))
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in TOKEN_GONE:
                raise
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
        started: dict[str, Any] | None = None,
    ) -> StepResult:
        spec = message.spec
        scratch = prepare_scratch(self.settings.scratch_dir, message, self.settings.workspace)
        argv: list[str] | str = spec.command if spec.command else (spec.run or "")
        with (
            Heartbeat(self.sfn, message.token, self.heartbeat_every(message)) as beat,
            CancelWatch(self.runs, message.run_id, beat.gone) as watch,
        ):
            # beat.gone ends the process: set by a gone token, the budget guard after a flush, or a cancel.
            usage = UsageRecorder(
                message,
                scratch / "usage.jsonl",
                sink,
                self.runs,
                self.calculator,
                self.settings.region,
                self.budget,
                beat.gone,
            )
            if (spec.artifacts or {}).get("download"):
                step_items = self.runs.get_run_items(message.run_id)[1]
                step_artifacts.download(self.artifacts, message, step_items, scratch / "artifacts", sink)
            if started is not None:
                self.recorders[(message.run_id, message.step, message.attempt)] = usage
                usage.start(started)
            outcome = (
                ProcessOutcome(exit_code=None, timed_out=False, stopped=True, seconds=0.0)
                if watch.cancelled  # cancelled before it started: never start the process
                else run_process(
                    argv,
                    step_environment(message, earlier, scratch),
                    scratch / "work",
                    spec.timeout,
                    sink,
                    beat.gone,
                    grace=spec.grace_period,
                    kill=watch.kill,
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
        if outcome.stopped and (over := budget_cause(self.budget, message)) is not None:
            # Stopped by the budget guard, which recorded the run cancelled: the step is cancelled too.
            return StepResult(status="cancelled", error=BUDGET_EXCEEDED, cause=over, **base)
        if outcome.stopped and watch.cancelled:
            return StepResult(status="cancelled", error=CANCELLED_ERROR, cause=watch.reason, **base)
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
            outputs = read_outputs(scratch / "outputs.json")
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

    def finish(self, message: StepMessage, started: dict[str, Any], result: StepResult) -> StepResult:
        """Record the end, then answer the state machine (so the record is final before the run moves)."""
        retrying = result.status == "failed" and message.automatic_retries_left
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
        # The last usage may have passed the budget after the step ended: the run was cancelled, so
        # it must not move on. Failing the token also lands the emulator's StopExecution.
        late = budget_cause(self.budget, message)  # read either way: the guard forgets it then
        over = (result.cause if result.error == BUDGET_EXCEEDED else None) or late
        try:
            if over is not None:
                self.sfn.send_task_failure(
                    taskToken=message.token, error=BUDGET_EXCEEDED, cause=over[:CAUSE_LIMIT]
                )
            elif result.status in ("succeeded", "skipped"):
                output = {"outputs": outputs, "status": result.status}
                self.sfn.send_task_success(taskToken=message.token, output=json.dumps(output))
            elif result.status == "cancelled":
                # Answered so the run's StopExecution lands (the emulator waits for the callback).
                self.sfn.send_task_failure(
                    taskToken=message.token,
                    error=result.error or CANCELLED_ERROR,
                    cause=(result.cause or "")[:CAUSE_LIMIT],
                )
            elif result.status == "failed":
                self.sfn.send_task_failure(
                    taskToken=message.token,
                    error=result.error or "StepFailed",
                    cause=(result.cause or "")[:CAUSE_LIMIT],
                )
        except ClientError as exc:
            if exc.response["Error"]["Code"] not in TOKEN_GONE:
                raise
            log.info("run %s no longer waits for step %s", message.run_id, message.step)
        return result


class Worker:
    """Polls the steps queue and runs up to `concurrency` steps at once."""

    def __init__(self, settings: Settings, concurrency: int | None = None) -> None:
        self.settings = settings
        self.sqs = aws.client("sqs", settings)
        self.sfn = aws.client("stepfunctions", settings)
        artifacts = ArtifactStore(settings.artifacts_bucket, s3_client(settings))
        runs_client = aws.client("dynamodb", settings)
        self.runner = StepRunner(
            settings,
            RunStore(settings.runs_table, runs_client, artifacts=artifacts),
            self.sfn,
            artifacts,
            logs=LogStore(settings.logs_table, aws.client("dynamodb", settings, validate=False)),
            budget=BudgetGuard(settings.runs_table, runs_client, self.sfn, settings.state_machine_arn_prefix),
        )
        # Runs the cleanup commands of a run cancelled with cleanup (messages of type "cleanup").
        self.cleanup = CleanupRunner(settings, self.runner.runs, self.runner.logs)
        # Records a step paused on failure as waiting (messages of type "wait"), holding no slot for long.
        self.pauses = PauseRecorder(self.runner.runs, self.sfn)
        self.concurrency = concurrency or settings.worker_concurrency
        self.slots = threading.Semaphore(self.concurrency)
        self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="step")
        self.shutdown = threading.Event()

    def run_forever(self, wait_seconds: int | None = None) -> None:
        wait_seconds = self.settings.worker_poll_seconds if wait_seconds is None else wait_seconds
        while not self.shutdown.is_set():
            self.slots.acquire()
            free = 1
            while free < min(self.concurrency, 10) and self.slots.acquire(blocking=False):
                free += 1
            try:
                response = self.sqs.receive_message(
                    QueueUrl=self.settings.steps_queue_url,
                    MaxNumberOfMessages=free,
                    WaitTimeSeconds=wait_seconds,
                    # Short: a message handed to a receive whose worker died meanwhile comes back in
                    # seconds, well inside the step's heartbeat time (a live worker deletes it at once).
                    VisibilityTimeout=MESSAGE_VISIBILITY_SECONDS,
                )
            except (ClientError, BotoCoreError) as exc:
                log.warning("cannot read the steps queue: %s", exc)
                self.shutdown.wait(1)
                response = {}
            messages = response.get("Messages", [])
            for _ in range(free - len(messages)):
                self.slots.release()
            for raw in messages:
                self.pool.submit(self._take, raw)
        self.pool.shutdown(wait=True)

    def _take(self, raw: dict[str, Any]) -> None:
        try:
            if message_type(raw["Body"]) == CLEANUP_TYPE:
                # Kept until the cleanup is over: a worker dying meanwhile is found by its redelivery.
                lease = QueueLease(self.sqs, self.settings.steps_queue_url, raw["ReceiptHandle"])
                self.cleanup.handle(CleanupMessage.model_validate_json(raw["Body"]), lease=lease)
                return
            # Deleted at once, beside the step: a worker that dies mid-step is caught by the heartbeat
            # timeout, not by redelivery (and a redelivery would be refused by the start record).
            self.runner.io.submit(
                self.sqs.delete_message,
                QueueUrl=self.settings.steps_queue_url,
                ReceiptHandle=raw["ReceiptHandle"],
            )
            if message_type(raw["Body"]) == WAIT_MESSAGE_TYPE:
                self.pauses.handle(WaitMessage.model_validate_json(raw["Body"]))
                return
            try:
                message = StepMessage.model_validate_json(raw["Body"])
            except ValidationError as exc:
                self._reject(raw["Body"], exc)
                return
            self.runner.handle(message)
        except Exception as exc:  # one bad step must never take the worker down
            log.exception("step message failed")
            self._fail_fast(raw.get("Body", ""), exc)
        finally:
            self.slots.release()

    def _fail_fast(self, body: str, exc: Exception) -> None:
        """Fail the step now rather than leave the run waiting for the heartbeat timeout."""
        try:
            token = json.loads(body).get("token")
            if isinstance(token, str):
                self.sfn.send_task_failure(
                    taskToken=token, error="RunnerError", cause=f"the worker failed: {exc.__class__.__name__}"
                )
        except (ValueError, AttributeError, ClientError, BotoCoreError):
            log.warning("could not report the failure to Step Functions; the heartbeat timeout will")

    def _reject(self, body: str, exc: ValidationError) -> None:
        log.error("malformed step message: %s", exc.errors(include_url=False, include_input=False))
        try:
            token = json.loads(body).get("token")
        except (ValueError, AttributeError):
            return
        if isinstance(token, str):
            self.sfn.send_task_failure(
                taskToken=token, error="InvalidStepMessage", cause="malformed step message"
            )


def exit_with_parent(parent_pid: int, every: float = 1.0) -> None:
    """Leave when the process that started us is gone (the local stack), never lingering alone."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every)
        log.warning("parent %s is gone; exiting", parent_pid)
        os._exit(0)

    threading.Thread(target=watch, daemon=True, name="parent-watch").start()


def main() -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(name)s %(message)s")
    if parent := os.environ.get(EXIT_WITH_PARENT_ENV):
        exit_with_parent(int(parent))
    worker = Worker(get_settings())
    signal.signal(signal.SIGTERM, lambda *_: worker.shutdown.set())
    signal.signal(signal.SIGINT, lambda *_: worker.shutdown.set())
    worker.run_forever()


if __name__ == "__main__":
    main()
