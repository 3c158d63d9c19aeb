"""The API's answers about runs (SPEC §3): run, step, history page, logs page, artifacts, starts.

Routes return these, so `/openapi.json` documents each 2xx body. A field typed `| MISSING` is left out
of the answer when the service did not give it (a step's wait only while it waits, say); every other
field is always there, null when unknown. `extra="forbid"`: a field the service adds but no view names
fails loudly in the tests instead of leaving the document behind.
"""

from __future__ import annotations

from typing import Any

from pydantic import MISSING, BaseModel, ConfigDict, Field, RootModel

from flowdeck.status import RunStatus


class View(BaseModel):
    """Base of every answer model: exactly the named fields."""

    model_config = ConfigDict(extra="forbid")


class StepView(View):
    """One step of a run (GET /runs/{id}); a step not started yet is `pending` while the run has not ended."""

    id: str
    kind: str
    status: str
    attempt: int
    started_at: str | None
    ended_at: str | None
    duration_s: float | None
    error: str | None
    cause: str | None
    summary: str | None
    not_run: str | None = Field(
        description="Why a step of an ended run never ran (it reads skipped, or cancelled with a "
        "cancelled run): e.g. 'the run failed at deploy'; null for a step that ran or was skipped "
        "by its condition or a person."
    )
    exit_code: int | None
    process_seconds: float | None
    cost_usd: str | None = Field(description="Priced when recorded; a decimal string, never a float.")
    usage: dict[str, Any] | None
    outputs: dict[str, Any]
    artifacts: list[dict[str, Any]]
    artifact_warnings: list[str]
    attempts: list[dict[str, Any]]
    reused_from: str | None = Field(description="The run whose result a retry took over for this step.")
    decisions: list[dict[str, Any]] = Field(description="Retry/skip decisions people took on it.")
    # Only while the step waits (paused on failure, or an approval).
    waiting_since: str | MISSING | None = MISSING
    wait_deadline: str | MISSING | None = MISSING
    waited_s: float | MISSING | None = MISSING
    allow_skip: bool | MISSING = MISSING
    # Only on an approval step: its request, approvals so far and deadline (no token, no links).
    approval: dict[str, Any] | MISSING = MISSING
    # Only on a running step while a cancel of its run is under way.
    cancel_requested_at: str | MISSING | None = MISSING
    cancel_mode: str | MISSING | None = MISSING
    cancelled_by: str | MISSING | None = MISSING
    cancel_reason: str | MISSING | None = MISSING
    actions: list[str] = Field(description="What a person may do to this step now.")


class RunRow(View):
    """One run of the history (GET /runs)."""

    run_id: str
    workflow: str | None
    status: str | None
    trigger: str | None
    trigger_detail: str | None = Field(description='What started it beyond the trigger: "main @ abc1234".')
    started_by: str | None
    started_at: str | None
    ended_at: str | None
    duration_s: float | None = Field(description="Null while queued.")
    cost_usd: str = Field(description="A decimal string, never a float.")
    retry_of: str | None
    retries: list[str] = Field(description="The runs that retried this one.")


class RunView(RunRow):
    """One run with its steps (GET /runs/{id})."""

    inputs: dict[str, Any]
    actions: list[str] = Field(description="What a person may do to the run now.")
    error: str | None
    error_cause: str | None
    retry_from: list[str] | None
    reused: list[str]
    cancel_requested_at: str | None
    cancel_mode: str | None
    cancelled_by: str | None
    cancel_reason: str | None
    cancel_escalated_at: str | None
    cancel_escalated_by: str | None
    cleanup_status: str | None
    cleanup: list[dict[str, Any]]
    cleanup_error: str | None
    execution_arn: str | None
    queued_at: str | None
    steps: list[StepView]


class RunPage(View):
    """A page of run history: pass `next_cursor` back as `cursor`; null ends the history."""

    runs: list[RunRow]
    next_cursor: str | None


class LogLine(View):
    """One line of a step's output."""

    seq: int = Field(description="The batch it was stored in.")
    step: str
    t: float = Field(description="When it was written, in seconds since the epoch.")
    stream: str
    text: str
    cont: bool | MISSING = Field(default=MISSING, description="Continues the line before (a long line).")


class LogPage(View):
    """A page of a run's logs (GET /runs/{id}/logs): pass `next_since_seq` back as `since_seq`."""

    run_id: str
    run_status: str
    lines: list[LogLine]
    next_since_seq: int
    more: bool


class ArtifactRow(View):
    """One uploaded artifact."""

    step: str
    path: str
    size: int | None
    content_type: str | None
    sha256: str | None
    expires_at: str | None
    expired: bool


class ArtifactList(View):
    """A run's artifacts, and per step the warnings its uploads left."""

    run_id: str
    artifacts: list[ArtifactRow]
    warnings: dict[str, list[str]]


class ArtifactPreview(View):
    """The first KiB of a text artifact (`preview=true`)."""

    path: str
    step: str
    content_type: str
    size: int
    preview: str
    truncated: bool


class ArtifactLink(View):
    """A presigned download URL (`link=true`): for callers that sign requests, which S3 must not get."""

    url: str


class ArtifactFile(RootModel[ArtifactPreview | ArtifactLink]):
    """One artifact as JSON: its preview (`preview=true`) or its download URL (`link=true`)."""


class RunStarted(View):
    """The 202 answer of a start."""

    run_id: str
    # queued: the workflow is at runtime_config.concurrency.max_runs; the run starts when a slot frees.
    # A repeated idempotency_key answers the run's status as recorded now (succeeded, failed, ...).
    status: str = RunStatus.RUNNING.value


class RetryStarted(View):
    """The 202 answer of a retry: the new run and its plan."""

    run_id: str
    retry_of: str
    from_step: list[str]
    reused: list[str]
    # running, or queued under the workflow's concurrency limit.
    status: str
