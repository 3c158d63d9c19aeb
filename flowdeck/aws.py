"""boto3 clients built one way for AWS and the local emulator."""

from __future__ import annotations

from typing import Any, cast

import boto3
from botocore.config import Config

from flowdeck.config import Settings, get_settings

_CLIENT_CONFIG = Config(retries={"max_attempts": 5, "mode": "standard"}, connect_timeout=5, read_timeout=70)


def client(service: str, settings: Settings | None = None, validate: bool = True) -> Any:
    """A client; `validate=False` skips botocore's parameter checks (hot paths whose requests we build)."""
    settings = settings or get_settings()
    # cast: boto3-stubs types clients per literal service name; this factory takes any name.
    return boto3.client(
        cast(Any, service),
        region_name=settings.region,
        endpoint_url=settings.aws_endpoint_url,
        config=_CLIENT_CONFIG if validate else _CLIENT_CONFIG.merge(Config(parameter_validation=False)),
    )
