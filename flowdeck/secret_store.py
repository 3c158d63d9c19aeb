"""Secret strings from Secrets Manager, cached briefly per process: a burst of requests costs one read."""

from __future__ import annotations

import threading
import time
from typing import Any, Final

from botocore.exceptions import ClientError

from flowdeck import aws
from flowdeck.config import Settings

# Short enough that a rotated secret takes effect within a minute.
CACHE_SECONDS: Final = 60.0
# Answers that mean "no usable secret": callers refuse what it would have checked, never a 5xx.
MISSING: Final = frozenset({"ResourceNotFoundException", "InvalidRequestException", "DecryptionFailure"})


def _code(error: ClientError) -> str | None:
    return error.response.get("Error", {}).get("Code")


class SecretStrings:
    """Reads secrets by name (None when absent or empty, cached too) and writes them (the local stack)."""

    def __init__(
        self, client: Any = None, cache_seconds: float = CACHE_SECONDS, settings: Settings | None = None
    ) -> None:
        self._client = client
        self.settings = settings
        self.cache_seconds = cache_seconds
        self._cache: dict[str, tuple[float, str | None]] = {}
        self._lock = threading.Lock()

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = aws.client("secretsmanager", self.settings)
        return self._client

    def get(self, name: str) -> str | None:
        """The secret's string; a missing secret is cached too, so a flood of bad requests stays cheap."""
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(name)
            if hit and now - hit[0] < self.cache_seconds:
                return hit[1]
        try:
            value = self.client.get_secret_value(SecretId=name).get("SecretString") or None
        except ClientError as error:
            if _code(error) not in MISSING:
                raise
            value = None
        with self._lock:
            self._cache[name] = (now, value)
        return value

    def put(self, name: str, value: str) -> None:
        """Create or replace the secret."""
        if not self.create(name, value):
            self.client.put_secret_value(SecretId=name, SecretString=value)
            with self._lock:
                self._cache.pop(name, None)

    def create(self, name: str, value: str) -> bool:
        """Create the secret unless it exists; False when it did (its value is kept)."""
        try:
            self.client.create_secret(Name=name, SecretString=value)
        except ClientError as error:
            if _code(error) != "ResourceExistsException":
                raise
            return False
        with self._lock:
            self._cache.pop(name, None)
        return True
