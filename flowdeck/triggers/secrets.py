"""Webhook secrets from Secrets Manager: `flowdeck/webhooks/<name>`, cached briefly per container."""

from __future__ import annotations

import threading
import time
from typing import Any, Final

from botocore.exceptions import ClientError

from flowdeck import aws

SECRET_PREFIX: Final = "flowdeck/webhooks/"  # noqa: S105 - a name prefix, not a secret
# Short enough that a rotated secret takes effect within a minute, long enough that a burst of
# deliveries costs one GetSecretValue.
CACHE_SECONDS: Final = 60.0
# Answers that mean "no usable secret": the delivery is refused (401), never a 5xx.
_MISSING = {"ResourceNotFoundException", "InvalidRequestException", "DecryptionFailure"}


def secret_id(name: str) -> str:
    """The Secrets Manager name of a workflow's webhook secret."""
    return SECRET_PREFIX + name


class WebhookSecrets:
    """Reads webhook secrets by name; None when the secret does not exist (or has no string value)."""

    def __init__(self, client: Any = None, cache_seconds: float = CACHE_SECONDS) -> None:
        self._client = client
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("secretsmanager")
        return self._client

    def get(self, name: str) -> str | None:
        """The secret's value; a missing secret is cached too, so a flood of bad deliveries stays cheap."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit and now - hit[0] < self.cache_seconds:
                return hit[1]
        try:
            value = self.client.get_secret_value(SecretId=secret_id(name)).get("SecretString") or None
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") not in _MISSING:
                raise
            value = None
        with self._lock:
            self._cache[name] = (now, value)
        return value

    def put(self, name: str, value: str) -> None:
        """Create or replace the secret (the local stack's `flowdeck secrets set-webhook`)."""
        try:
            self.client.create_secret(Name=secret_id(name), SecretString=value)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ResourceExistsException":
                raise
            self.client.put_secret_value(SecretId=secret_id(name), SecretString=value)
        with self._lock:
            self._cache.pop(name, None)
