"""Settings read once from the environment (CDK -> env var -> this model)."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Generic, TypeVar

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from flowdeck import constants

T = TypeVar("T")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="FLOWDECK_", extra="ignore")

    runs_table: str = constants.RUNS_TABLE
    steps_queue_url: str = ""
    logs_table: str = constants.LOGS_TABLE
    connections_table: str = constants.CONNECTIONS_TABLE
    deliveries_table: str = constants.DELIVERIES_TABLE
    websocket_endpoint: str = ""
    artifacts_bucket: str = constants.ARTIFACTS_BUCKET
    state_machine_arn_prefix: str = (
        f"arn:aws:states:us-east-1:123456789012:stateMachine:{constants.STATE_MACHINE_PREFIX}"
    )
    workflows_dir: Path = Path("workflows")
    # Set only for the local stack (moto); on AWS boto3 finds the real endpoints.
    aws_endpoint_url: str | None = None
    # Steps run in this folder (their `./scripts/...` paths are relative to it).
    workspace: Path = Path(".")
    # Per-step scratch space: outputs and usage files, downloaded artifacts.
    scratch_dir: Path = Path(tempfile.gettempdir()) / "flowdeck"
    worker_concurrency: int = 4
    # The ECS cluster fresh steps' tasks run in (a cancel stops them there); empty: no fresh steps.
    fresh_cluster: str = ""
    # In a fresh task whose step has its own image: the volume shared with the step's container
    # (flowdeck.runner.shim); the step runs there, not as the runner's child.
    shim_dir: Path | None = None
    # SQS long polling: an idle worker's receives are billed, so wait as long as SQS allows (20 s).
    worker_poll_seconds: int = Field(default=20, ge=0, le=20)
    # How long ECS waits after SIGTERM before SIGKILL (the container's stopTimeout, set by the stack):
    # a stopping worker finishes its steps within it or hands them back (flowdeck.runner.worker).
    worker_stop_seconds: int = Field(default=constants.WORKER_STOP_TIMEOUT_SECONDS, ge=0)
    # Injected by ECS into every container: the agent's endpoint for task scale-in protection.
    ecs_agent_uri: str = Field(default="", validation_alias="ECS_AGENT_URI")
    # AWS only (set by the CDK app): pausing a workflow disables its Scheduler schedules (in this
    # group) and EventBridge rules; the local stack's scheduler and poller read the state instead.
    manage_triggers: bool = False
    schedule_group: str = "flowdeck"
    # Only the local stack trusts the X-Flowdeck-User header; on AWS identity comes from IAM (SigV4).
    trust_user_header: bool = False
    # AWS only (set by the CDK app): the dashboard's user pool, whose members sign in through the
    # identity pool; their requests name the person by the pool's `sub` (flowdeck.identity).
    user_pool_id: str = ""
    # Pricing (see flowdeck/costs): "null", "rate-card" or "package.module:ClassName"; the card's path.
    cost_calculator: str = "rate-card"
    rate_card: Path | None = None
    region: str = Field(
        default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION")
    )
    # Approvals (issue 4): the notifier's queue, where links point, e-mail sender, secrets, Slack.
    approvals_queue_url: str = ""
    public_api_url: str = f"http://{constants.LOCAL_API_HOST}:{constants.LOCAL_API_PORT}"
    # Where the dashboard is served (locally the stack's own URL; on AWS the FlowdeckWeb stack's); empty:
    # no dashboard yet, and links point at the API's run.
    dashboard_url: str = ""
    ses_sender: str = "flowdeck@example.com"
    approval_link_secret_name: str = "flowdeck/approvals/link-key"  # noqa: S105 - a name
    slack_api_url: str = "https://slack.com/api/"
    slack_secret_name: str = "flowdeck/slack"  # noqa: S105 - a name
    slack_channel: str = "#approvals"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()


class per_settings(Generic[T]):
    """Build a handler's dependency once per settings object.

    Whoever re-reads the settings (tests, a second local stack in one process) gets fresh clients.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self.build = build
        self.__doc__ = build.__doc__
        self.__name__ = build.__name__
        self._built: tuple[Settings, T] | None = None

    def __call__(self) -> T:
        settings = get_settings()
        if self._built is None or self._built[0] is not settings:
            self._built = (settings, self.build())
        return self._built[1]

    def cache_clear(self) -> None:
        self._built = None
