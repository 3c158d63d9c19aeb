"""Slack's Web API for approvals: post the request, update it in place, look people up.

The bot token and the signing secret live in Secrets Manager (`flowdeck/slack`, JSON
`{"bot_token", "signing_secret"}`). The bot needs the scopes `chat:write` (post and update) and
`users:read` + `users:read.email` (an approver's e-mail when teams.yaml does not name their Slack id).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Final

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from flowdeck.approvals.directory import Directory, DirectoryError
from flowdeck.approvals.policy import approvers_of
from flowdeck.approvals.slack.blocks import (
    approval_of,
    decided_blocks,
    ended_blocks,
    ended_fallback_text,
    fallback_text,
    posted,
    request_blocks,
)
from flowdeck.config import Settings, get_settings
from flowdeck.secret_store import CACHE_SECONDS, SecretStrings

# What a call to Slack can raise: an error answer, a client error, or the network (URLError, timeouts).
SLACK_ERRORS: Final = (SlackApiError, SlackClientError, OSError)
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,20}$")


class SlackNotConfigured(Exception):
    """The `flowdeck/slack` secret is missing or unusable: the notifier skips Slack and says so."""


class SlackDeliveryError(Exception):
    """Slack answered an error (or could not be reached) for a post or an update."""


@dataclass(frozen=True)
class SlackCredentials:
    bot_token: str
    signing_secret: str


class SlackSecrets:
    """The bot token and signing secret from Secrets Manager, cached briefly per container."""

    def __init__(
        self,
        name: str | None = None,
        client: Any = None,
        cache_seconds: float = CACHE_SECONDS,
        settings: Settings | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.name = name or self.settings.slack_secret_name
        self.store = SecretStrings(client, cache_seconds, self.settings)

    def get(self) -> SlackCredentials | None:
        """The credentials, or None when the secret is absent or not `{bot_token, signing_secret}`."""
        return parse_credentials(self.store.get(self.name) or "")

    def put(self, credentials: SlackCredentials) -> None:
        """Create or replace the secret (`flowdeck secrets set-slack`)."""
        value = json.dumps({"bot_token": credentials.bot_token, "signing_secret": credentials.signing_secret})
        self.store.put(self.name, value)


def parse_credentials(raw: str) -> SlackCredentials | None:
    """`{"bot_token": "xoxb-...", "signing_secret": "..."}` -> credentials; anything else -> None."""
    try:
        data = json.loads(raw) if raw else None
    except json.JSONDecodeError:
        return None
    if not isinstance(data, dict):
        return None
    token, secret = data.get("bot_token"), data.get("signing_secret")
    if not isinstance(token, str) or not token.strip() or not isinstance(secret, str) or not secret.strip():
        return None
    return SlackCredentials(token.strip(), secret.strip())


class SlackApprovals:
    """Posts approval requests to Slack and updates them in place (slack_sdk WebClient)."""

    def __init__(
        self,
        secrets: SlackSecrets | None = None,
        settings: Settings | None = None,
        directory: Directory | None = None,
    ) -> None:
        self.settings = settings or get_settings()
        self.secrets = secrets or SlackSecrets(settings=self.settings)
        self._directory = directory

    def credentials(self) -> SlackCredentials:
        credentials = self.secrets.get()
        if credentials is None:
            raise SlackNotConfigured(
                f"Slack is not configured: set the secret {self.secrets.name} to "
                '{"bot_token": "xoxb-...", "signing_secret": "..."} (flowdeck secrets set-slack)'
            )
        return credentials

    def signing_secret(self) -> str | None:
        """The signing secret, or None when Slack is not configured (interactions are then refused)."""
        credentials = self.secrets.get()
        return credentials.signing_secret if credentials else None

    def web_client(self) -> WebClient:
        return WebClient(token=self.credentials().bot_token, base_url=self.settings.slack_api_url, timeout=10)

    def mentions(self, request: dict[str, Any]) -> list[str]:
        """Slack ids (teams.yaml `people`) of everyone who may decide; none if teams.yaml is unreadable."""
        try:
            if self._directory is None:
                self._directory = Directory.load(self.settings.workflows_dir)
        except DirectoryError:
            return []  # the notifier records the broken file; the message still goes out
        people = approvers_of(approval_of(request).get("approvers") or {}, self._directory)
        ids = {self._directory.slack_for_email(person) for person in people}
        return sorted(i for i in ids if i and SLACK_USER_ID.match(i))

    def channel_for(self, request: dict[str, Any]) -> str:
        return str(approval_of(request).get("slack_channel") or self.settings.slack_channel)

    def post_request(self, request: dict[str, Any]) -> dict[str, Any]:
        """Post the interactive request; returns {"channel", "ts"} to update it later."""
        client = self.web_client()
        try:
            answer = client.chat_postMessage(
                channel=self.channel_for(request),
                text=fallback_text(request),
                blocks=request_blocks(request, self.mentions(request)),
                unfurl_links=False,
            )
        except SLACK_ERRORS as error:
            raise SlackDeliveryError(f"chat.postMessage failed: {_reason(error)}") from None
        return {"channel": str(answer["channel"]), "ts": str(answer["ts"])}

    def update_decided(self, request: dict[str, Any]) -> None:
        """Rewrite the posted message (its `slack` {channel, ts}) to show the decisions so far."""
        if posted(request):
            self._update(request, fallback_text(request), decided_blocks(request, self.mentions(request)))

    def update_ended(self, request: dict[str, Any], ending: dict[str, Any]) -> bool:
        """Rewrite the posted message for an approval that stopped waiting undecided (no buttons).

        False when it was never posted; raises SlackNotConfigured or SlackDeliveryError.
        """
        if not posted(request):
            return False
        self._update(request, ended_fallback_text(request, ending), ended_blocks(request, ending))
        return True

    def _update(self, request: dict[str, Any], text: str, blocks: list[dict[str, Any]]) -> None:
        where = approval_of(request)["slack"]
        try:
            self.web_client().chat_update(
                channel=str(where["channel"]), ts=str(where["ts"]), text=text, blocks=blocks
            )
        except SLACK_ERRORS as error:
            raise SlackDeliveryError(f"chat.update failed: {_reason(error)}") from None

    def email_of(self, user_id: str) -> str | None:
        """The Slack user's profile e-mail (users.info; needs the users:read.email scope)."""
        try:
            answer = self.web_client().users_info(user=user_id)
        except (*SLACK_ERRORS, SlackNotConfigured):
            return None
        email = ((answer.get("user") or {}).get("profile") or {}).get("email")
        return str(email).strip().lower() if email else None


def _reason(error: Exception) -> str:
    if isinstance(error, SlackApiError):
        return str(error.response.get("error") or error.response.status_code)
    return f"{type(error).__name__}: {error}"
