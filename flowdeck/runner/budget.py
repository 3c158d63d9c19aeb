"""Budget guard: cancel a run whose cost passed its `runtime_config.max_cost_usd` (SPEC §1).

Called by the worker after each usage flush with the run's new total. The first worker to see the
total past the limit asks for the run's cancel (flowdeck.control.cancelling: a conditional write, one
winner; from `running` or `waiting`, so a run waiting for an approval while another branch spends is
stopped too), fails its waiting steps' tokens and stops the execution. This worker stops its step at
once, every other worker of the run sees the request and stops its step gracefully (SIGTERM, then
the grace period), and the run reads `cancelled` once the last of them has ended. The run's fresh
tasks still starting are stopped (StopTask) as a graceful cancel stops them (flowdeck.control.stop_fresh).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Protocol, runtime_checkable

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck import aws
from flowdeck.catalog import load_definition
from flowdeck.config import Settings
from flowdeck.control.cancelling import fail_waiting_steps, request_cancel
from flowdeck.control.stop_fresh import stop_fresh_tasks
from flowdeck.definition.models import WorkflowDefinition
from flowdeck.errors import FlowdeckError
from flowdeck.messages import StepMessage
from flowdeck.stores.executions import stop_execution
from flowdeck.stores.fresh_tasks import FreshTasks
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.budget")

BUDGET_EXCEEDED = "BudgetExceeded"
CANCELLED_BY = "budget-guard"


@runtime_checkable
class StopReasons(Protocol):
    """A budget that can say why it stopped a step (the worker then reports BudgetExceeded)."""

    def exceeded(self, message: StepMessage) -> str | None: ...


def budget_cause(budget: object, message: StepMessage) -> str | None:
    """Why `budget` stopped this step, or None (also for a budget that never stops steps)."""
    return budget.exceeded(message) if isinstance(budget, StopReasons) else None


def usd(value: Decimal) -> str:
    """Dollars as people write them: 0.01, 5, 0.012345 (no exponent, no trailing zeros)."""
    return format(value.normalize(), "f")


def execution_arn(state_machine_arn_prefix: str, workflow: str, run_id: str) -> str:
    """The execution of run `run_id`: executions are named by run id, state machines by workflow."""
    return state_machine_arn_prefix.replace(":stateMachine:", ":execution:", 1) + f"{workflow}:{run_id}"


@dataclass(frozen=True)
class FreshStop:
    """How the guard reaches a run's fresh tasks: the cluster's tasks and a workflow's definition (each
    built only when a run is stopped, so a worker's start pays nothing for them)."""

    tasks: Callable[[], FreshTasks]
    definition: Callable[[str], WorkflowDefinition]

    @classmethod
    def for_settings(cls, settings: Settings) -> FreshStop | None:
        """The configured fresh cluster's, or None when there is none."""
        if not settings.fresh_cluster:
            return None
        return cls(
            tasks=lambda: FreshTasks(settings.fresh_cluster, aws.client("ecs", settings)),
            definition=functools.partial(load_definition, settings.workflows_dir),
        )


class BudgetGuard:
    """Cancels a run once its cost passes max_cost_usd; remembers which steps it stopped, and why."""

    def __init__(
        self,
        runs_table: str,
        ddb: Any,
        sfn: Any,
        state_machine_arn_prefix: str,
        fresh: FreshStop | None = None,
    ) -> None:
        self.table = runs_table
        self.ddb = ddb
        self.sfn = sfn
        self.arn_prefix = state_machine_arn_prefix
        self.fresh = fresh
        self._lock = threading.Lock()
        # Task token -> why the step was stopped; read (and forgotten) by the worker when it reports.
        self._stopped: dict[str, str] = {}

    @classmethod
    def for_settings(cls, settings: Settings, ddb: Any, sfn: Any) -> BudgetGuard:
        """The guard of a pool worker or a fresh task, over the configured table and fresh cluster."""
        return cls(
            settings.runs_table, ddb, sfn, settings.state_machine_arn_prefix, FreshStop.for_settings(settings)
        )

    def after_usage(self, message: StepMessage, run_total_usd: Decimal, stop: threading.Event) -> None:
        """Past the limit: record the run cancelled (one winner), stop its execution, set `stop`."""
        limit = message.max_cost_usd
        if limit is None or run_total_usd <= limit:
            return
        cause = f"run cost ${usd(run_total_usd)} passed max_cost_usd ${usd(limit)}"
        with self._lock:
            if message.token in self._stopped:
                return  # already handled for this step (flushes go on until the process is gone)
            self._stopped[message.token] = cause
        try:
            arn = self.record_cancelled(message, cause)
        except (ClientError, BotoCoreError) as exc:
            log.warning("could not record run %s cancelled (next flush retries): %s", message.run_id, exc)
            with self._lock:
                self._stopped.pop(message.token, None)
            return
        if arn is not None:
            log.warning("run %s cancelled: %s", message.run_id, cause)
            self.stop_run(arn, message, cause)
            self.stop_fresh_tasks(message, cause)
        # Winner or not, the run is over budget: this step stops gracefully (SIGTERM, grace, SIGKILL).
        stop.set()

    def exceeded(self, message: StepMessage) -> str | None:
        """Why the guard stopped this step (and forget it), or None when it did not."""
        with self._lock:
            return self._stopped.pop(message.token, None)

    def record_cancelled(self, message: StepMessage, cause: str) -> str | None:
        """Ask for the run's cancel if it is still under way; its execution ARN when this call won."""
        runs = RunStore(self.table, self.ddb)
        extra = {"error": {"S": BUDGET_EXCEEDED}, "error_cause": {"S": cause}}
        run = request_cancel(runs, message.run_id, "graceful", BUDGET_EXCEEDED, CANCELLED_BY, extra)
        if run is None:
            return None  # another worker's guard won, or the run had already ended
        # Another branch may wait for a person (approval, paused step): that wait ends too.
        fail_waiting_steps(runs, self.sfn, message.run_id, BUDGET_EXCEEDED, cause)
        recorded = run.get("execution_arn")
        return str(recorded) if recorded else execution_arn(self.arn_prefix, message.workflow, message.run_id)

    def stop_run(self, arn: str, message: StepMessage, cause: str) -> None:
        """Stop the run's execution; the record is already final, so a failure here is only logged."""
        try:
            if not stop_execution(self.sfn, arn, BUDGET_EXCEEDED, cause):
                log.warning("could not stop run %s: %s", message.run_id, "ExecutionDoesNotExist")
        except ClientError as exc:
            log.warning("could not stop run %s: %s", message.run_id, exc.response["Error"]["Code"])
        except BotoCoreError as exc:
            log.warning("could not stop run %s: %s", message.run_id, exc.__class__.__name__)

    def stop_fresh_tasks(self, message: StepMessage, cause: str) -> None:
        """StopTask the run's fresh tasks still starting, as a graceful cancel does; failures only logged."""
        if self.fresh is None:
            return
        try:
            definition = self.fresh.definition(message.workflow)
            runs = RunStore(self.table, self.ddb)
            stop_fresh_tasks(self.fresh.tasks(), runs, definition, message.run_id, "graceful", cause)
        except (ClientError, BotoCoreError, FlowdeckError, OSError) as exc:
            # Their runners still end on the cancel record; the stop only saves their start.
            log.warning("run %s: its fresh tasks were not stopped: %s", message.run_id, exc)
