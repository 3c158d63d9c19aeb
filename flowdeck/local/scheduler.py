"""The local stack's stand-in for EventBridge Scheduler: fire due schedules as StartExecution calls.

Every second the scheduler looks for schedule triggers with a fire time in (last check, now] and
starts the workflow's state machine with the input Scheduler sends on AWS
(`flowdeck.triggers.schedules.execution_input`). The execution name is fixed per (workflow,
trigger, fire time), so a second firing of one instant (two schedulers, a retried call) starts
nothing: Step Functions refuses the name. What was due while the stack was down is not replayed
(the first check starts at `flowdeck up`), and a machine that slept through several fire times of
one schedule fires only the latest once. A run it starts is recorded in the trigger history by the
run-events reaction, as on AWS (`flowdeck.triggers.deliveries.record_trigger_starts`); the scheduler
records only the firings that started no run (`duplicate`, `refused`: also every firing of a paused
workflow, which on AWS has its schedules disabled).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.catalog import Catalog
from flowdeck.constants import DELIVERIES_TABLE, RUNS_TABLE
from flowdeck.control.workflow_state import WorkflowStates
from flowdeck.definition.models import ScheduleTrigger
from flowdeck.local.event_rules import EventRulePoller, install_rules
from flowdeck.stores.deliveries import Deliveries
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore
from flowdeck.triggers import schedules

log = logging.getLogger("flowdeck.scheduler")

CHECK_EVERY_SECONDS = 1.0


@dataclass(frozen=True)
class Firing:
    """One schedule firing and what it did."""

    workflow: str
    trigger_index: int
    fire_time: datetime
    run_id: str
    outcome: str  # started | duplicate | refused


class LocalScheduler:
    """Fires the catalog's schedule triggers; `fire_due(now)` does one check (tests inject `now`)."""

    def __init__(
        self,
        catalog: Catalog,
        executions: Executions,
        deliveries: Deliveries,
        *,
        since: datetime | None = None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        every: float = CHECK_EVERY_SECONDS,
        states: WorkflowStates | None = None,
    ) -> None:
        """`states`: paused workflows' firings start nothing and are recorded `refused`."""
        self.schedules: list[tuple[str, int, ScheduleTrigger]] = [
            (name, index, trigger)
            for name, definition in sorted(catalog.definitions.items())
            for index, trigger in schedules.schedule_triggers(definition)
        ]
        self.executions = executions
        self.deliveries = deliveries
        self.states = states
        self.clock = clock
        self.every = every
        self.checked_until = since
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LocalScheduler:
        if self.checked_until is None:
            self.checked_until = self.clock()  # nothing due before the stack started is replayed
        if self.schedules:
            self._thread = threading.Thread(target=self._loop, daemon=True, name="scheduler")
            self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def _loop(self) -> None:
        while not self._stop.wait(self.every):
            self.fire_due(self.clock())

    def fire_due(self, now: datetime) -> list[Firing]:
        """Fire every schedule due in (last check, now]; the firings, in schedule order."""
        since = self.checked_until or now
        firings = []
        for workflow, index, trigger in self.schedules:
            fire_time = schedules.due_fire_time(trigger, since, now)
            if fire_time is not None:
                firings.append(self.fire(workflow, index, trigger, fire_time))
        self.checked_until = max(since, now)
        return firings

    def fire(self, workflow: str, index: int, trigger: ScheduleTrigger, fire_time: datetime) -> Firing:
        """Start the run of one fire time (at most once per instant); record a firing that started none."""
        run_id = schedules.firing_run_id(workflow, index, fire_time)
        delivery_id = fire_time.astimezone(UTC).isoformat().replace("+00:00", "Z")
        reason = None
        try:
            # As on AWS, where a paused workflow's schedule is disabled: this firing starts nothing.
            paused = self.states.refusal(workflow) if self.states is not None else None
            if paused is not None:
                outcome, reason = "refused", paused.message
            else:
                created = self.executions.start(workflow, run_id, schedules.execution_input(trigger))
                outcome = "started" if created else "duplicate"
        except (BotoCoreError, ClientError) as exc:
            # AWS Scheduler would retry, then send to its DLQ; locally the history says why.
            log.warning("schedule %s of %s could not start a run: %s", trigger.cron, workflow, exc)
            outcome, reason = "refused", f"StartExecution failed: {exc}"
        if outcome == "started":
            # The run's record start is its history row (run events): one code path with AWS.
            return Firing(workflow, index, fire_time, run_id, outcome)
        try:
            self.deliveries.record(
                workflow,
                "schedule",
                delivery_id,
                outcome,
                run_id=run_id if outcome == "duplicate" else None,
                reason=reason,
                source=schedules.started_by(trigger),
            )
        except (BotoCoreError, ClientError) as exc:  # the history explains; it must not stop the firing
            log.warning("could not record schedule firing %s of %s: %s", delivery_id, workflow, exc)
        return Firing(workflow, index, fire_time, run_id, outcome)


class LocalTriggers:
    """The local stack's schedules and event rules: installed at start, stopped with the stack."""

    def __init__(self, scheduler: LocalScheduler, event_rules: EventRulePoller) -> None:
        self.scheduler = scheduler
        self.event_rules = event_rules

    @classmethod
    def install(
        cls, client: Callable[[str], Any], catalog: Catalog, state_machine_arn_prefix: str
    ) -> LocalTriggers:
        """Create the event rules and their queues in the emulator; nothing runs until start()."""
        sqs = client("sqs")
        rules = install_rules(client("events"), sqs, catalog)
        executions = Executions(state_machine_arn_prefix, client("stepfunctions"))
        deliveries = Deliveries(DELIVERIES_TABLE, client("dynamodb"))
        states = WorkflowStates(RunStore(RUNS_TABLE, client("dynamodb")))
        return cls(
            LocalScheduler(catalog, executions, deliveries, states=states),
            EventRulePoller(rules, sqs, executions, deliveries, states=states),
        )

    def start(self) -> LocalTriggers:
        self.scheduler.start()
        self.event_rules.start()
        return self

    def stop(self) -> None:
        self.scheduler.stop()
        self.event_rules.stop()
