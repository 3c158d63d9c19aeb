"""HMAC-SHA256 body signatures: `sha256=<hex>` (our X-Flowdeck-Signature and GitHub's X-Hub-Signature-256)."""

from __future__ import annotations

import hashlib
import hmac
from typing import Final

PREFIX: Final = "sha256="
HEX_LENGTH: Final = hashlib.sha256().digest_size * 2


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
