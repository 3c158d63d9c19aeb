"""Build the notifier and the decisions from the settings (the Lambda handlers and the local stack)."""

from __future__ import annotations

import logging
from typing import Any

from flowdeck import aws
from flowdeck.approvals.decisions import ApprovalDecisions
from flowdeck.approvals.directory import Directory
from flowdeck.approvals.ended import EndedApprovals
from flowdeck.approvals.links import LinkKey
from flowdeck.approvals.notifier import ApprovalNotifier
from flowdeck.config import Settings, get_settings
from flowdeck.stores.artifacts import ArtifactStore, s3_client
from flowdeck.stores.outbox import Outbox
from flowdeck.stores.runs import RunStore

log = logging.getLogger("flowdeck.approvals")


def slack_approvals(settings: Settings) -> Any:
    """SlackApprovals when that module is installed (it is optional: e-mail and the inbox work without)."""
    try:
        from flowdeck.approvals.slack.client import SlackApprovals
    except ImportError:  # pragma: no cover - the Slack module ships with Flowdeck
        return None
    return SlackApprovals(settings=settings)


def _runs(settings: Settings) -> RunStore:
    dynamodb = aws.client("dynamodb", settings)
    return RunStore(
        settings.runs_table, dynamodb, ArtifactStore(settings.artifacts_bucket, s3_client(settings))
    )


def build_notifier(settings: Settings | None = None) -> ApprovalNotifier:
    settings = settings or get_settings()
    runs = _runs(settings)
    # Only the local stack keeps sent e-mails in the table (links are bearer credentials on AWS).
    outbox = Outbox(runs.client, settings.runs_table) if settings.aws_endpoint_url else None
    return ApprovalNotifier(
        runs=runs,
        sfn=aws.client("stepfunctions", settings),
        ses=aws.client("ses", settings),
        link_key=LinkKey(settings.approval_link_secret_name, aws.client("secretsmanager", settings)),
        directory=Directory.load(settings.workflows_dir),
        public_api_url=settings.public_api_url,
        sender=settings.ses_sender,
        slack=slack_approvals(settings),
        outbox=outbox,
        dashboard_url=settings.dashboard_url,
    )


def build_decisions(settings: Settings | None = None) -> ApprovalDecisions:
    settings = settings or get_settings()
    slack = slack_approvals(settings)

    def update_slack(view: dict[str, Any]) -> None:
        if slack is not None and view.get("slack"):
            slack.update_decided(view)

    return ApprovalDecisions(
        _runs(settings),
        aws.client("stepfunctions", settings),
        Directory.load(settings.workflows_dir),
        on_decided=update_slack,
    )


def build_ended_approvals(settings: Settings | None = None) -> EndedApprovals:
    """The run-events reaction closing approvals that stopped waiting undecided (teams.yaml read lazily)."""
    settings = settings or get_settings()
    return EndedApprovals(
        RunStore(settings.runs_table, aws.client("dynamodb", settings)), slack_approvals(settings)
    )
