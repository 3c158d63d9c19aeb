"""Trigger history reactions: runs that Scheduler and EventBridge start directly become deliveries.

The deliveries table itself (records, claims, first-seen times, reads) is flowdeck.stores.deliveries.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from flowdeck.constants import PK as RUNS_PK
from flowdeck.stores.deliveries import Deliveries

if TYPE_CHECKING:
    from flowdeck.runs.events import Reaction

log = logging.getLogger(__name__)

# Run triggers whose deliveries no Flowdeck code receives on AWS (Scheduler and EventBridge call
# StartExecution themselves): the run-events reaction records them from the run item.
DIRECT_START_TRIGGERS: Final = frozenset({"schedule", "event", "incident"})


def _started_at(run: dict[str, Any]) -> datetime | None:
    """When the run recorded its start (RecordRunStart's `$$.State.EnteredTime`), if readable."""
    for name in ("run_started_at", "started_at"):
        value = run.get(name)
        if isinstance(value, str) and value:
            try:
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
            return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return None


def record_trigger_starts(deliveries: Deliveries) -> Reaction:
    """A run-events reaction: a run that Scheduler or an EventBridge rule started is a `started` delivery.

    Fires when the run item first gets a status (the state machine's RecordRunStart). The row's key
    comes from the run (its start time and id; the delivery id is the run id), and the put is
    conditional, so a redelivered stream record writes nothing. The same code records the local
    stack's scheduler and event rules, which record only what started no run.
    """

    def react(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        trigger = new.get("trigger")
        if trigger not in DIRECT_START_TRIGGERS or "status" not in new:
            return
        if old is not None and "status" in old:
            return
        workflow, run_id = new.get("workflow"), new.get("run_id") or new.get(RUNS_PK)
        started_at = _started_at(new)
        if not workflow or not run_id or started_at is None:
            # Not a run record RecordRunStart wrote: no stable key to record it once.
            log.warning(
                "run %s (trigger %s) has no workflow, run id or start time: not recorded", run_id, trigger
            )
            return
        deliveries.record(
            str(workflow),
            str(trigger),
            str(run_id),
            "started",
            run_id=str(run_id),
            source=str(new["started_by"]) if new.get("started_by") else None,
            received_at=started_at,
            once=True,
        )

    return react
