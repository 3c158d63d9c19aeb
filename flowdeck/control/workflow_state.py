"""Pausable workflows (SPEC §3 `PUT /workflows/{wf}/state`): a paused workflow starts no run from any trigger.

The state is one small item per workflow in the runs table (pk `WORKFLOW#<wf>`, sk `STATE`; none of
the attribute names the history's sparse indexes key on, so it stays out of them). No item means
active. Pausing and resuming are conditional writes: pausing a paused workflow keeps who paused it,
when and why (and says so), resuming an active one changes nothing.

Who reads it: every start through Flowdeck's code (API, CLI, retry, webhook, GitHub push: 409
WorkflowPaused, deliveries recorded `refused`), the promotion of queued runs (a queued run stays
queued while its workflow is paused and starts, in order, on resume), and the local stack's
scheduler and event-rule poller (firings recorded `refused`). On AWS the workflow's Scheduler
schedules and EventBridge rules are disabled as well (flowdeck.triggers.switch), so they start
nothing behind Flowdeck's back. Runs already under way are not touched.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final

from pydantic import BaseModel, ConfigDict, Field, StrictBool

from flowdeck.errors import Conflict
from flowdeck.stores.runs import RunStore
from flowdeck.stores.workflow_states import WorkflowStateItems

MAX_REASON: Final = 500
VIEW_FIELDS: Final = ("paused_by", "paused_at", "pause_reason", "resumed_by", "resumed_at", "resume_reason")


class WorkflowPaused(Conflict):
    """A start of a paused workflow (manual, API, retry, webhook, GitHub push)."""

    code = "WorkflowPaused"


class SetWorkflowState(BaseModel):
    """Body of PUT /workflows/{wf}/state."""

    model_config = ConfigDict(extra="forbid")
    active: StrictBool
    reason: str | None = Field(default=None, min_length=1, max_length=MAX_REASON)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def state_view(item: dict[str, Any] | None) -> dict[str, Any]:
    """`active` and who paused (or resumed) the workflow, when and why; no item is active."""
    item = item or {}
    return {"active": bool(item.get("active", True))} | {name: item.get(name) for name in VIEW_FIELDS}


def paused_message(workflow: str, state: dict[str, Any]) -> str:
    """Why a start of `workflow` was refused, in the words the trigger history shows."""
    why = f": {state['pause_reason']}" if state.get("pause_reason") else ""
    return (
        f"workflow {workflow!r} is paused (by {state.get('paused_by')} at {state.get('paused_at')}{why}); "
        f"`flowdeck resume {workflow}` starts runs again"
    )


class WorkflowStates:
    """Reads and writes the paused/active state of workflows."""

    def __init__(self, runs: RunStore) -> None:
        self.items = WorkflowStateItems(runs)

    def get(self, workflow: str) -> dict[str, Any]:
        """The workflow's state view (a strongly consistent read: a pause holds from its answer on)."""
        return state_view(self.items.get(workflow))

    def many(self, workflows: list[str]) -> dict[str, dict[str, Any]]:
        """State views of `workflows` (BatchGetItem, 100 keys a call; unprocessed keys read again)."""
        found = self.items.many(workflows)
        return {w: state_view(found.get(w)) for w in workflows}

    def refusal(self, workflow: str) -> WorkflowPaused | None:
        """The error a start of `workflow` gets while it is paused; None while it is active."""
        state = self.get(workflow)
        return None if state["active"] else WorkflowPaused(paused_message(workflow, state))

    def check(self, workflow: str) -> None:
        """Raise WorkflowPaused (409) if `workflow` is paused."""
        if (error := self.refusal(workflow)) is not None:
            raise error

    def set(self, workflow: str, request: SetWorkflowState, caller: str) -> tuple[dict[str, Any], bool]:
        """Pause or resume; (the state now, whether this call changed it). Repeating either is fine."""
        changed = self.items.set_active(workflow, request.active, caller, _now(), request.reason)
        return self.get(workflow), changed
