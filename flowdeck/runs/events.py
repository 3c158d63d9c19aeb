"""React to run records changing (the runs table's stream): work that follows a run, not a request.

Each reaction gets the old and new image of a RUN item (plain values); each step reaction those of
a STEP# item. All must be idempotent: stream records arrive at least once, and a failed batch is
delivered again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flowdeck.clock import duration_ms
from flowdeck.constants import RUN_SK, SK, STEP_SK_PREFIX
from flowdeck.status import FINISHED_RUN_STATUSES
from flowdeck.stores.runs import RunStore, from_item

Change = tuple[dict[str, Any] | None, dict[str, Any]]
Reaction = Callable[[dict[str, Any] | None, dict[str, Any]], None]
"""(old image or None, new image) of one RUN item."""
StepReaction = Callable[[dict[str, Any] | None, dict[str, Any]], None]
"""(old image or None, new image) of one STEP# item (its run id under `pk`, its sort key `STEP#<id>`)."""


def item_change(record: dict[str, Any], sk_matches: Callable[[str], bool]) -> Change | None:
    """The (old, new) images of an item whose sort key matches, in a stream record; None otherwise."""
    if record.get("eventName") == "REMOVE":
        return None
    change = record.get("dynamodb", {})
    keys = from_item(change.get("Keys") or {})
    if not sk_matches(str(keys.get(SK, ""))) or "NewImage" not in change:
        return None
    old = change.get("OldImage")
    return (from_item(old) if old else None), from_item(change["NewImage"])


def run_change(record: dict[str, Any]) -> Change | None:
    """The (old, new) images of a RUN item in a stream record; None for anything else."""
    return item_change(record, lambda sk: sk == RUN_SK)


def step_change(record: dict[str, Any]) -> Change | None:
    """The (old, new) images of a STEP# item in a stream record; None for anything else."""
    return item_change(record, lambda sk: sk.startswith(STEP_SK_PREFIX))


class RunEvents:
    """Calls every reaction for every RUN item change, and every step reaction for every STEP# change."""

    def __init__(self, reactions: Iterable[Reaction], step_reactions: Iterable[StepReaction] = ()) -> None:
        self.reactions = list(reactions)
        self.step_reactions = list(step_reactions)

    def handle(self, record: dict[str, Any]) -> None:
        """One stream record; an exception fails it (Lambda retries it, in order, per shard)."""
        if (change := run_change(record)) is not None:
            for reaction in self.reactions:
                reaction(*change)
        elif self.step_reactions and (change := step_change(record)) is not None:
            for step_reaction in self.step_reactions:
                step_reaction(*change)


def record_duration(runs: RunStore) -> Reaction:
    """A run-events reaction: once a run has ended, set its duration_ms (the by-duration index's key).

    Idempotent: a redelivered change finds the duration already set and writes nothing; the write's
    condition (the same start and end) keeps a stale change from overwriting a newer end.
    """

    def react(old: dict[str, Any] | None, new: dict[str, Any]) -> None:
        if new.get("status") not in FINISHED_RUN_STATUSES:
            return
        started, ended = new.get("started_at"), new.get("ended_at")
        milliseconds = duration_ms(started, ended)
        if milliseconds is None or new.get("duration_ms") == milliseconds:
            return
        runs.set_duration(str(new.get("pk")), str(started), str(ended), milliseconds)

    return react
