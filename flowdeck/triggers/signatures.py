"""Webhook signatures: HMAC-SHA256 of the body (`sha256=<hex>`: ours and GitHub's X-Hub-Signature-256),
and of a timestamp with the body (`v0=<hex>` over `v0:<timestamp>:<body>`, Slack's scheme).

A body-only signature is valid for as long as the secret is: whoever captured one delivery can send it
again. A timestamped one is valid for WINDOW_SECONDS around its timestamp, and the trigger service
accepts each one once (flowdeck.triggers.service), so a captured delivery cannot start another run.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from collections.abc import Callable
from typing import Final

from slack_sdk.signature import Clock, SignatureVerifier

PREFIX: Final = "sha256="
HEX_LENGTH: Final = hashlib.sha256().digest_size * 2
TIMESTAMPED_PREFIX: Final = "v0="
# How far a timestamp may be from the receiver's clock, either way (Slack's window).
WINDOW_SECONDS: Final = 5 * 60
_UNIX_SECONDS: Final = re.compile(r"^[0-9]{1,12}$")


def sign(secret: str | bytes, body: bytes) -> str:
    """The header value a sender puts on `body`: sha256=<hex of HMAC-SHA256(secret, body)>."""
    key = secret.encode() if isinstance(secret, str) else secret
    return PREFIX + hmac.new(key, body, hashlib.sha256).hexdigest()


def verify(secret: str | bytes, body: bytes, header: str | None) -> bool:
    """True only when `header` is a well-formed signature of `body` with `secret` (constant-time compare)."""
    if not header or not secret:
        return False
    value = header.strip()
    if not value.startswith(PREFIX) or len(value) != len(PREFIX) + HEX_LENGTH:
        return False
    # Hex digits compare case-insensitively; compare_digest wants ASCII on both sides.
    given = value[len(PREFIX) :].lower()
    if not given.isascii():
        return False
    expected = sign(secret, body)[len(PREFIX) :]
    return hmac.compare_digest(expected, given)


def sign_timestamped(secret: str, timestamp: int | str, body: bytes) -> str:
    """The X-Flowdeck-Signature of `body` sent at `timestamp` (Unix seconds): v0=<hex>."""
    message = f"v0:{timestamp}:".encode() + body
    return TIMESTAMPED_PREFIX + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def is_timestamped(header: str | None) -> bool:
    """Whether a signature header uses the timestamped scheme (`v0=`) rather than the body-only one."""
    return bool(header) and str(header).strip().startswith(TIMESTAMPED_PREFIX)


def timestamp_seconds(timestamp: str | None) -> int | None:
    """The header's Unix time in seconds; None when it is missing or not a plain integer."""
    value = (timestamp or "").strip()
    return int(value) if _UNIX_SECONDS.match(value) else None


def timestamp_age(timestamp: int, now: Callable[[], float] = time.time) -> float:
    """How far `timestamp` is from now, in seconds, either way (a clock ahead counts as much as behind)."""
    return abs(now() - timestamp)


class _Clock(Clock):
    def __init__(self, now: Callable[[], float]) -> None:
        self._now = now

    def now(self) -> float:
        return self._now()


def verify_timestamped(
    secret: str, body: bytes, timestamp: str, header: str, now: Callable[[], float] = time.time
) -> bool:
    """True when `header` signs `body` at `timestamp` with `secret` and the timestamp is within the window
    (slack_sdk's verifier: Slack's scheme and window, constant-time compare)."""
    value = header.strip()
    if not secret.strip() or not value.isascii() or timestamp_seconds(timestamp) is None:
        return False
    try:
        return SignatureVerifier(secret, clock=_Clock(now)).is_valid(body, timestamp.strip(), value.lower())
    except ValueError:  # a body that is not UTF-8 (Slack's verifier signs text)
        return False
