"""Who signed a request: the IAM principal, or the person behind a Cognito identity-pool session."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from flowdeck import aws
from flowdeck.config import Settings
from flowdeck.errors import NotAllowed

# How long a user pool `sub` -> e-mail answer is reused (AdminGetUser is rate-limited per account).
DIRECTORY_TTL_SECONDS = 300.0
# ".../us-east-1_AbC,cognito-idp.us-east-1.amazonaws.com/us-east-1_AbC:CognitoSignIn:<sub>"
SIGN_IN_MARKER = ":CognitoSignIn:"


@dataclass(frozen=True)
class CognitoSignIn:
    """The user pool and the person's `sub`, as the identity pool vouched for them."""

    user_pool_id: str
    sub: str


def cognito_sign_in(identity: Mapping[str, Any]) -> CognitoSignIn | None:
    """The user pool sign-in behind identity-pool credentials, if the request carries one."""
    provider = str(identity.get("cognitoAuthenticationProvider") or "")
    if SIGN_IN_MARKER not in provider:
        return None
    issuer, sub = provider.rsplit(SIGN_IN_MARKER, 1)
    # The last provider entry is "cognito-idp.<region>.amazonaws.com/<pool id>".
    user_pool_id = issuer.rsplit(",", 1)[-1].rsplit("/", 1)[-1]
    if not user_pool_id or not sub:
        return None
    return CognitoSignIn(user_pool_id, sub)


class UserDirectory:
    """The verified e-mail of a user pool member by `sub` (cognito-idp:AdminGetUser), cached."""

    def __init__(
        self,
        user_pool_id: str,
        client: Any,
        ttl_seconds: float = DIRECTORY_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.user_pool_id = user_pool_id
        self._client = client
        self._ttl = ttl_seconds
        self._clock = clock
        self._emails: dict[str, tuple[float, str]] = {}

    def email(self, sub: str) -> str:
        """The person's verified e-mail; NotAllowed when they have none."""
        now = self._clock()
        cached = self._emails.get(sub)
        if cached and cached[0] > now:
            return cached[1]
        # With e-mail as the username, the pool also finds a member by `sub` (an alias of the username).
        answer = self._client.admin_get_user(UserPoolId=self.user_pool_id, Username=sub)
        attributes = {a["Name"]: a["Value"] for a in answer.get("UserAttributes", [])}
        email = str(attributes.get("email") or "").strip().lower()
        if not email or attributes.get("email_verified") != "true":
            raise NotAllowed("your e-mail address is not verified: ask an administrator to verify it")
        self._emails[sub] = (now + self._ttl, email)
        return email


def signed_principal(identity: Mapping[str, Any], directory: UserDirectory | None) -> str | None:
    """The person (a user pool member's e-mail) or IAM principal that signed the request; None if unsigned."""
    if sign_in := cognito_sign_in(identity):
        # Every identity-pool user is the same role session: only the pool's `sub` tells people apart.
        if directory is None or sign_in.user_pool_id != directory.user_pool_id:
            raise NotAllowed("this API does not accept sign-ins from that user pool")
        return directory.email(sign_in.sub)
    principal = identity.get("userArn") or identity.get("caller")
    return str(principal) if principal else None


def user_directory(settings: Settings) -> UserDirectory | None:
    """The directory of the configured user pool (set on AWS by the FlowdeckWeb stack); None without one."""
    if not settings.user_pool_id:
        return None
    return UserDirectory(settings.user_pool_id, aws.client("cognito-idp", settings))
