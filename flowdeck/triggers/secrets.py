"""Webhook secrets from Secrets Manager: `flowdeck/webhooks/<name>`, cached briefly per container."""

from __future__ import annotations

from typing import Any, Final

from flowdeck.secret_store import CACHE_SECONDS, SecretStrings

SECRET_PREFIX: Final = "flowdeck/webhooks/"  # noqa: S105 - a name prefix, not a secret


def secret_id(name: str) -> str:
    """The Secrets Manager name of a workflow's webhook secret."""
    return SECRET_PREFIX + name


class WebhookSecrets:
    """Reads webhook secrets by name; None when the secret does not exist (or has no string value)."""

    def __init__(self, client: Any = None, cache_seconds: float = CACHE_SECONDS) -> None:
        self.store = SecretStrings(client, cache_seconds)

    def get(self, name: str) -> str | None:
        """The secret's value (cached briefly; a missing secret too)."""
        return self.store.get(secret_id(name))

    def put(self, name: str, value: str) -> None:
        """Create or replace the secret (the local stack's `flowdeck secrets set-webhook`)."""
        self.store.put(secret_id(name), value)
