"""Run ids of runs a delivery starts: readable and sortable as manual ones, the same for the same delivery.

`20261206-034709-webhook-1a2b3c4d5e6f`: the time the delivery was first seen (or its own time), what
started it, and a hash of what identifies the delivery, so a redelivery names (and starts) the same run.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

DIGEST_CHARS = 12


def delivery_run_id(moment: datetime, kind: str, identity: str) -> str:
    """`<UTC time>-<kind>-<hash of identity>`: a valid execution name (at most 80 characters)."""
    digest = hashlib.sha256(identity.encode()).hexdigest()[:DIGEST_CHARS]
    return f"{moment.astimezone(UTC):%Y%m%d-%H%M%S}-{kind}-{digest}"
