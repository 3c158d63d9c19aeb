"""The API's answers of the signed triggers and of a workflow's trigger history."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import MISSING, Field

from flowdeck.runs.views import View


class HookStarted(View):
    """POST /hooks/{wf}: the run a delivery started (`duplicate` when it had started it before)."""

    run_id: str
    duplicate: bool


class PushOutcome(View):
    """What a push did to one workflow whose git trigger watches its repository."""

    workflow: str
    outcome: Literal["started", "duplicate", "ignored", "refused"]
    run_id: str | MISSING = MISSING
    reason: str | MISSING = MISSING


class GithubDelivery(View):
    """POST /hooks/github: the delivery and, for a push, what it did to each watching workflow."""

    delivery_id: str
    event: str | None
    runs: list[PushOutcome]


class TriggerHistory(View):
    """GET /workflows/{wf}/triggers: the triggers (with their endpoints) and the latest deliveries."""

    workflow: str
    triggers: list[dict[str, Any]]
    deliveries: list[dict[str, Any]] = Field(description="Newest first: outcome, run, reason, source.")
    next_fire_times: list[str] | MISSING = Field(default=MISSING, description="Of its schedules (UTC).")
