"""API Gateway's management API (`@connections`): posts frames to WebSocket connections."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from flowdeck.config import get_settings


class Gone(Exception):
    """The WebSocket connection no longer exists (API Gateway's GoneException, HTTP 410)."""


class ConnectionsApi:
    """API Gateway's management API (`@connections`): on AWS, or the local server answering it."""

    def __init__(self, endpoint_url: str, client: Any = None) -> None:
        self.client = client or _management_client(endpoint_url)

    def post(self, connection_id: str, data: bytes) -> None:
        try:
            self.client.post_to_connection(ConnectionId=connection_id, Data=data)
        except ClientError as exc:
            if exc.response["Error"]["Code"] == "GoneException":
                raise Gone(connection_id) from None
            raise


def _management_client(endpoint_url: str) -> Any:
    # Not aws.client(): the management API lives at the WebSocket API's own endpoint, not the emulator's.
    return boto3.client(
        "apigatewaymanagementapi",
        region_name=get_settings().region,
        endpoint_url=endpoint_url,
        config=Config(retries={"max_attempts": 3, "mode": "standard"}, connect_timeout=5, read_timeout=10),
    )
