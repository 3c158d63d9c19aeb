"""Pydantic models of a workflow definition (SPEC §1); field-level rules live here."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from flowdeck.definition.durations import parse_duration

Seconds = Annotated[int, BeforeValidator(parse_duration)]

WORKFLOW_NAME_PATTERN = r"^[a-z0-9-]{1,64}$"
# Input and environment names also end up as keys in the compiled ASL, where a key ending in
# ".$" would be read as a path: identifiers only.
INPUT_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]{0,127}$"
InputName = Annotated[str, Field(pattern=INPUT_NAME_PATTERN)]
EnvName = Annotated[str, Field(pattern=ENV_NAME_PATTERN)]
STEP_ID_PATTERN = r"^[a-z0-9_-]{1,64}$"

# Fargate's valid CPU units and, for each, the memory (MiB) it accepts (256 takes no 1536).
FARGATE_MEMORY: dict[int, tuple[int, ...]] = {
    256: (512, 1024, 2048),
    512: tuple(range(1024, 4096 + 1, 1024)),
    1024: tuple(range(2048, 8192 + 1, 1024)),
    2048: tuple(range(4096, 16384 + 1, 1024)),
    4096: tuple(range(8192, 30720 + 1, 1024)),
    8192: tuple(range(16384, 61440 + 1, 4096)),
    16384: tuple(range(32768, 122880 + 1, 8192)),
}


def _memory_choices(allowed: tuple[int, ...]) -> str:
    if len(allowed) > 4:  # the long lists are evenly spaced
        return f"{allowed[0]}..{allowed[-1]} MiB in steps of {allowed[1] - allowed[0]}"
    return ", ".join(map(str, allowed)) + " MiB"


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True, frozen=True)


class InputSpec(_Model):
    type: Literal["string", "integer", "number", "boolean", "object", "array"] = "string"
    default: Any = None
    description: str = ""
    required: bool = False
    enum: list[Any] | None = None


class ScheduleTrigger(_Model):
    cron: str
    timezone: str = "UTC"
    inputs: dict[str, Any] = Field(default_factory=dict)


class WebhookTrigger(_Model):
    secret: str
    inputs: dict[str, str] = Field(default_factory=dict)
    # Accept only deliveries that sign a fresh timestamp with the body (X-Flowdeck-Timestamp, v0=...).
    require_timestamp: bool = False


class GitTrigger(_Model):
    repo: str
    branches: list[str] = Field(default_factory=lambda: ["main"])


class EventTrigger(_Model):
    pattern: dict[str, Any]
    trigger: Literal["event", "incident"] = "event"


class Trigger(_Model):
    manual: dict[str, Any] | None = None
    schedule: ScheduleTrigger | None = None
    webhook: WebhookTrigger | None = None
    git: GitTrigger | None = None
    event: EventTrigger | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Trigger:
        kinds = [k for k in ("manual", "schedule", "webhook", "git", "event") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a trigger has exactly one of: manual, schedule, webhook, git, event")
        return self


class Concurrency(_Model):
    max_runs: int = Field(default=0, ge=0, description="0 means unlimited")
    on_limit: Literal["queue", "reject"] = "queue"


Mode = Literal["pool", "fresh"]


class RuntimeConfig(_Model):
    # pool: warm workers poll the steps queue; fresh: one new Fargate task per step (its own image).
    mode: Mode = "pool"
    retention_hours: int = Field(default=24, ge=1, le=24 * 3650)
    concurrency: Concurrency = Field(default_factory=Concurrency)
    max_cost_usd: float | None = Field(default=None, gt=0)
    heartbeat_seconds: int = Field(default=30, ge=5, le=3600)


class Resources(_Model):
    cpu: int = 256
    memory: int = 512

    @model_validator(mode="after")
    def _fargate_combination(self) -> Resources:
        if self.cpu not in FARGATE_MEMORY:
            raise ValueError(f"cpu {self.cpu} is not a Fargate size: use one of {sorted(FARGATE_MEMORY)}")
        allowed = FARGATE_MEMORY[self.cpu]
        if self.memory not in allowed:
            raise ValueError(
                f"memory {self.memory} does not fit cpu {self.cpu}: use {_memory_choices(allowed)}"
            )
        return self


class Retries(_Model):
    max: int = Field(default=0, ge=0, le=10)
    interval: Seconds = 5
    backoff: float = Field(default=2.0, ge=1.0, le=10.0)


class Artifacts(_Model):
    upload: list[str] = Field(default_factory=list)
    download: list[str] = Field(default_factory=list)

    @field_validator("download")
    @classmethod
    def _step_colon_path(cls, value: list[str]) -> list[str]:
        for item in value:
            step, sep, path = item.partition(":")
            if not sep or not step or not path:
                raise ValueError(f"{item!r} is not step:path")
        return value


class Who(_Model):
    """People by name: listed users (e-mails), members of teams in teams.yaml (`groups`), or any member."""

    users: list[str] = Field(default_factory=list)
    groups: list[str] = Field(default_factory=list)
    any_member: bool = False


class Approvers(Who):
    """Who may decide an approval step."""


class Permissions(_Model):
    """Who may do what to a workflow's runs; an action not named is open to anyone who reaches the API."""

    start: Who | None = None
    cancel: Who | None = None
    # A finished run's retry, and Retry step on a step paused on failure.
    retry: Who | None = None
    skip: Who | None = None
    # Pausing and resuming the workflow (PUT /workflows/{wf}/state).
    pause: Who | None = None


class Approval(_Model):
    approvers: Approvers = Field(default_factory=Approvers)
    min_approvals: int = Field(default=1, ge=1)
    channels: list[Literal["email", "slack", "inbox"]] = Field(default_factory=lambda: ["inbox"])  # type: ignore[arg-type]
    timeout: Seconds = 24 * 3600
    message: str = ""
    # Where the Slack request goes (a channel name or id); default Settings.slack_channel.
    slack_channel: str | None = None

    @field_validator("slack_channel")
    @classmethod
    def _slack_channel(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"#[a-z0-9._-]{1,80}|[CGD][A-Z0-9]{2,20}", value):
            raise ValueError(
                f"{value!r} is not a Slack channel: use a name like #approvals or an id like C0123ABCD"
            )
        return value


class Notify(_Model):
    slack: str | None = None
    email: list[str] = Field(default_factory=list)
    message: str


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise ValueError("environment values are strings, numbers or booleans")


class Step(_Model):
    id: str = Field(pattern=STEP_ID_PATTERN)
    name: str = ""
    needs: list[str] | None = None
    if_: str | None = Field(default=None, alias="if")
    run: str | None = None
    command: list[str] | None = Field(default=None, min_length=1)
    approval: Approval | None = None
    notify: Notify | None = None
    # Where the step runs; default the workflow's runtime_config.mode. Approval steps run nothing.
    mode: Mode | None = None
    # The fresh task's image (any image with /bin/sh); default the Flowdeck runner image.
    image: str | None = Field(default=None, min_length=1, max_length=1024)
    resources: Resources = Field(default_factory=Resources)
    env: dict[EnvName, Annotated[str, BeforeValidator(_env_value)]] = Field(default_factory=dict)
    timeout: Annotated[Seconds, Field(gt=0)] | None = None
    retries: Retries = Field(default_factory=Retries)
    artifacts: Artifacts = Field(default_factory=Artifacts)
    on_failure: Literal["fail", "pause", "continue"] = "fail"
    allow_skip: bool = False
    # How long a step paused on failure waits for Retry step / Skip step before it fails (PauseTimedOut).
    pause_timeout: Annotated[Seconds, Field(gt=0, le=365 * 24 * 3600)] = 24 * 3600
    cleanup: str | None = None
    # SIGTERM to SIGKILL when the run is cancelled (or its budget passed); default 30 s.
    grace_period: Annotated[Seconds, Field(ge=0, le=3600)] | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Step:
        kinds = [k for k in ("run", "command", "approval", "notify") if getattr(self, k) is not None]
        if len(kinds) != 1:
            found = ", ".join(kinds) if kinds else "none"
            raise ValueError(f"a step has exactly one of: run, command, approval, notify (found {found})")
        if self.approval is not None and (self.mode is not None or self.image is not None):
            raise ValueError("an approval step runs no process: it takes no mode or image")
        return self

    @property
    def kind(self) -> Literal["run", "approval", "notify"]:
        if self.approval is not None:
            return "approval"
        if self.notify is not None:
            return "notify"
        return "run"


class WorkflowDefinition(_Model):
    name: str = Field(pattern=WORKFLOW_NAME_PATTERN)
    description: str = ""
    inputs: dict[InputName, InputSpec] = Field(default_factory=dict)
    triggers: list[Trigger] = Field(default_factory=list)
    runtime_config: RuntimeConfig = Field(default_factory=RuntimeConfig)
    permissions: Permissions = Field(default_factory=Permissions)
    steps: list[Step] = Field(min_length=1)

    def step(self, step_id: str) -> Step:
        return next(s for s in self.steps if s.id == step_id)

    def mode_of(self, step: Step) -> Mode:
        """Where the step runs: its own `mode`, else the workflow's."""
        return step.mode or self.runtime_config.mode

    def fresh_steps(self) -> list[Step]:
        """The steps that each run in a new Fargate task."""
        return [s for s in self.steps if s.approval is None and self.mode_of(s) == "fresh"]

    def dependencies(self) -> dict[str, list[str]]:
        """Each step's `needs`, with the default (the previous step) filled in."""
        deps: dict[str, list[str]] = {}
        for index, step in enumerate(self.steps):
            if step.needs is not None:
                deps[step.id] = list(step.needs)
            else:
                deps[step.id] = [self.steps[index - 1].id] if index else []
        return deps

    def input_defaults(self) -> dict[str, Any]:
        return {k: v.default for k, v in self.inputs.items() if v.default is not None}
