"""Signed approve/reject links for e-mail: `{public_api_url}/approvals/<token>`.

token = base64url(JSON {run, step, approver, decision, exp}) + "." + base64url(HMAC-SHA256(payload)),
keyed by the Secrets Manager secret `flowdeck/approvals/link-key`. A link names one approver and one
decision, expires at the approval's deadline (410 Gone after) and works once (the route answers 409
when that approver already decided). A link that does not verify is refused with 401.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any, Literal

from flowdeck.errors import FlowdeckError, Unauthorized
from flowdeck.secret_store import SecretStrings

KEY_BYTES = 32
# Tokens longer than this are refused before any decoding (a link is far shorter).
MAX_TOKEN_CHARS = 2048
# The link key rarely changes (rotating it voids every open link): cached longer than other secrets.
CACHE_SECONDS = 300.0


class LinkExpired(FlowdeckError):
    """A genuine link used after its approval's deadline."""

    code = "LinkExpired"
    status = 410


@dataclass(frozen=True)
class LinkClaims:
    run: str
    step: str
    approver: str
    decision: Literal["approve", "reject"]
    exp: int


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: LinkClaims, key: bytes) -> str:
    payload = _b64(
        json.dumps(
            {
                "run": claims.run,
                "step": claims.step,
                "approver": claims.approver,
                "decision": claims.decision,
                "exp": claims.exp,
            },
            separators=(",", ":"),
            sort_keys=True,
        ).encode()
    )
    mac = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    return f"{payload}.{_b64(mac)}"


def verify(token: str, key: bytes, now: float | None = None) -> LinkClaims:
    """The link's claims; Unauthorized (401) if not ours or altered, LinkExpired (410) past its deadline."""
    if not token or len(token) > MAX_TOKEN_CHARS or token.count(".") != 1:
        raise Unauthorized("this approval link is not valid")
    payload, _, signature = token.partition(".")
    expected = hmac.new(key, payload.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
    except (binascii.Error, ValueError):
        raise Unauthorized("this approval link is not valid") from None
    if not hmac.compare_digest(expected, given):
        raise Unauthorized("this approval link is not valid (its signature does not match)")
    try:
        data: Any = json.loads(_unb64(payload))
        claims = LinkClaims(
            run=str(data["run"]),
            step=str(data["step"]),
            approver=str(data["approver"]),
            decision=data["decision"],
            exp=int(data["exp"]),
        )
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise Unauthorized("this approval link is not valid") from None
    if claims.decision not in ("approve", "reject"):
        raise Unauthorized("this approval link is not valid")
    if (time.time() if now is None else now) >= claims.exp:
        raise LinkExpired(
            "this link expired at the approval's deadline "
            f"({time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(claims.exp))})"
        )
    return claims


class LinkKey:
    """The signing key from Secrets Manager (cached a few minutes per process)."""

    def __init__(self, secret_name: str, client: Any = None) -> None:
        self.secret_name = secret_name
        self.store = SecretStrings(client, CACHE_SECONDS)

    def get(self) -> bytes:
        """The key; Unauthorized when the secret is missing (links cannot be checked, so none is honoured)."""
        value = self.store.get(self.secret_name)
        if not value:
            raise Unauthorized(f"approval links are not set up (secret {self.secret_name} is missing)")
        return value.encode()

    def ensure(self) -> None:
        """Create the secret with a random key if absent (the local stack's bootstrap)."""
        self.store.create(self.secret_name, secrets.token_urlsafe(KEY_BYTES))


def link_url(public_api_url: str, token: str) -> str:
    return f"{public_api_url.rstrip('/')}/approvals/{token}"
