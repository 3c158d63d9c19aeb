"""`flowdeck secrets set-slack`: the Slack app's bot token and signing secret (`flowdeck/slack`)."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import boto3
import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.approvals.slack.client import SlackSecrets, parse_credentials
from flowdeck.config import get_settings

EXPECTED = '{"bot_token": "xoxb-...", "signing_secret": "..."}'


def secrets_client(endpoint_url: str | None) -> Any:
    """Secrets Manager for `flowdeck secrets`: the local stack's emulator when given, else AWS."""
    settings = get_settings()
    endpoint = endpoint_url or settings.aws_endpoint_url
    # The local emulator takes any credentials; on AWS the caller's own (profile, SSO, ...) apply.
    return boto3.client(
        "secretsmanager",
        region_name=settings.region,
        endpoint_url=endpoint,
        aws_access_key_id="local" if endpoint else None,
        aws_secret_access_key="local" if endpoint else None,
    )


def set_slack(
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="Secrets Manager endpoint: the local stack's `Local AWS` URL; omit on AWS."),
    ] = None,
) -> None:
    """Set the Slack bot token and signing secret: stdin JSON {bot_token, signing_secret}, or prompts."""
    if not sys.stdin.isatty():
        raw = sys.stdin.read().strip()
    else:
        token = typer.prompt("Bot token (xoxb-...)", hide_input=True)
        signing = typer.prompt("Signing secret", hide_input=True)
        raw = json.dumps({"bot_token": token, "signing_secret": signing})
    credentials = parse_credentials(raw)
    if credentials is None:
        raise typer.BadParameter(f"expected {EXPECTED}, both non-empty", param_hint="stdin")
    settings = get_settings()
    client = secrets_client(endpoint_url)
    secrets = SlackSecrets(settings.slack_secret_name, client, settings=settings)
    secrets.put(credentials)
    Console(stderr=True).print(f"set {escape(secrets.name)}")
