"""React to run records changing (the runs table's stream): work that follows a run, not a request.

Each reaction gets the old and new image of a RUN item (plain values) and must be idempotent:
stream records arrive at least once, and a failed batch is delivered again.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from flowdeck.constants import RUN_SK, SK
from flowdeck.stores.runs import from_item

Reaction = Callable[[dict[str, Any] | None, dict[str, Any]], None]
"""(old image or None, new image) of one RUN item."""


def run_change(record: dict[str, Any]) -> tuple[dict[str, Any] | None, dict[str, Any]] | None:
    """The (old, new) images of a RUN item in a stream record; None for anything else."""
    if record.get("eventName") == "REMOVE":
        return None
    change = record.get("dynamodb", {})
    keys = from_item(change.get("Keys") or {})
    if keys.get(SK) != RUN_SK or "NewImage" not in change:
        return None
    old = change.get("OldImage")
    return (from_item(old) if old else None), from_item(change["NewImage"])


class RunEvents:
    """Calls every reaction for every RUN item change in a batch of stream records."""

    def __init__(self, reactions: Iterable[Reaction]) -> None:
        self.reactions = list(reactions)

    def handle(self, record: dict[str, Any]) -> None:
        """One stream record; an exception fails it (Lambda retries it, in order, per shard)."""
        change = run_change(record)
        if change is None:
            return
        old, new = change
        for reaction in self.reactions:
            reaction(old, new)
