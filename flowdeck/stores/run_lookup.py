"""Load one run's items or answer 404: the check every run-scoped request starts with."""

from __future__ import annotations

from typing import Any

from flowdeck.errors import RunNotFound
from flowdeck.stores.runs import RunStore

RunItems = tuple[dict[str, Any], dict[str, dict[str, Any]], dict[str, dict[str, Any]]]
"""The run item, its step items by step id, and the published outputs."""


def load_run(runs: RunStore, run_id: str, *, require: str | None = None) -> RunItems:
    """The run's items (one Query); RunNotFound when there is no run item or it lacks `require`.

    A run item written only by a late step update (no start record) carries no plan or workflow:
    callers that act on those pass the attribute they need, so such a run counts as unknown.
    """
    run, steps, outputs = runs.get_run_items(run_id)
    if run is None or (require is not None and not run.get(require)):
        raise RunNotFound(f"no run with id {run_id!r}")
    return run, steps, outputs
