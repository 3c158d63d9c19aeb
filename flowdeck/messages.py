"""The messages the state machine sends (steps, waits, approvals) and what the worker answers.

Shared by the compiler (statemachines/), the runner and the approvals notifier: one contract.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DEFAULT_GRACE_SECONDS = 30
# `type` of a message to the steps queue that waits for a person (a step paused on failure).
WAIT_MESSAGE_TYPE = "wait"
# `type` of a message to the approvals queue: an approval step asking people.
APPROVAL_MESSAGE_TYPE = "approval"


class StepSpec(BaseModel):
    """Static part of the message, compiled from the step definition."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)
    kind: Literal["run", "notify", "approval"] = "run"
    run: str | None = None
    command: list[str] | None = None
    env: dict[str, str] = Field(default_factory=dict)
    timeout: int = 6 * 3600
    max_attempts: int = 1
    on_failure: str = "fail"
    condition: str | None = Field(default=None, alias="if")
    notify: dict[str, Any] | None = None
    artifacts: dict[str, list[str]] | None = None
    resources: dict[str, int] = Field(default_factory=dict)
    # Seconds between SIGTERM and SIGKILL when the run is cancelled (YAML `grace_period`).
    grace_period: int = DEFAULT_GRACE_SECONDS


class StepMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")
    token: str
    run_id: str
    workflow: str
    step: str
    retry_count: int = 0
    heartbeat_seconds: int = 30
    retention_hours: int = 24
    inputs: dict[str, Any] = Field(default_factory=dict)
    spec: StepSpec
    # runtime_config.max_cost_usd (a string in the message, so exact): the budget guard's limit.
    max_cost_usd: Decimal | None = None
    # Steps a retry took over from the run it retries: answered at once, never run (flowdeck.control.retry).
    reuse: list[str] = Field(default_factory=list)
    # Attempts a step paused on failure had before a person chose Retry step: numbering goes on.
    attempt_base: int = 0
    # Where the step runs. A fresh step's runner builds its own message (flowdeck.runner.fresh) and
    # adds its task's ARN and when the task began (its image pull, epoch seconds: Fargate bills from then).
    mode: Literal["pool", "fresh"] = "pool"
    task_arn: str | None = None
    task_started_at: float | None = None

    @property
    def attempt(self) -> int:
        return self.attempt_base + self.retry_count + 1


class WaitMessage(BaseModel):
    """A token that waits for a person (`type: wait`): a step paused on failure; answered by a decision."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["wait"]
    reason: Literal["paused"]
    token: str
    run_id: str
    workflow: str
    step: str
    entered_at: str
    timeout_seconds: int
    allow_skip: bool = False


class ApprovalSpec(BaseModel):
    """The step's `approval:` block as the message carries it."""

    model_config = ConfigDict(extra="ignore")
    approvers: dict[str, Any] = {}
    min_approvals: int = 1
    channels: list[str] = ["inbox"]
    timeout: int = 24 * 3600
    message: str = ""
    slack_channel: str | None = None


class ApprovalMessage(BaseModel):
    """What the compiled approval state sends to the approvals queue (statemachines/approval.py)."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["approval"]  # APPROVAL_MESSAGE_TYPE
    token: str
    run_id: str
    workflow: str
    step: str
    entered_at: str
    timeout_seconds: int
    inputs: dict[str, Any] = {}
    approval: ApprovalSpec


class StepResult(BaseModel):
    """How a step ended, as the worker reports it to the run record and the state machine."""

    status: Literal["succeeded", "failed", "skipped", "cancelled"]
    outputs: dict[str, Any] = Field(default_factory=dict)
    exit_code: int | None = None
    error: str | None = None
    cause: str | None = None
    started_at: str
    ended_at: str
    process_seconds: float = 0.0
    # Uploaded artifacts ({path, size, content_type, sha256, key, expires_at}) and what did not match.
    artifacts: list[dict[str, Any]] = Field(default_factory=list)
    artifact_warnings: list[str] = Field(default_factory=list)
    # What the step used (flowdeck.costs.models.StepUsage as JSON) and its price; None for no process.
    usage: dict[str, Any] | None = None
    cost_usd: Decimal = Decimal(0)
