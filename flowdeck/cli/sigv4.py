"""SigV4 for the CLI on AWS: the REST and WebSocket APIs use IAM auth (SPEC §3), the local stack none."""

from __future__ import annotations

import re
from collections.abc import Generator
from urllib.parse import urlsplit, urlunsplit

import boto3
import httpx
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest

SERVICE = "execute-api"
# https://{api-id}.execute-api.{region}.amazonaws.com/{stage}/... (and wss:// for WebSocket APIs)
_EXECUTE_API_HOST = re.compile(r"^[a-z0-9]+\.execute-api\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?$")


def region_of(url: str) -> str | None:
    """The region of an API Gateway URL; None for any other host (the local stack)."""
    match = _EXECUTE_API_HOST.match(urlsplit(url).hostname or "")
    return match.group(1) if match else None


def signed_headers(
    method: str, url: str, body: bytes = b"", headers: dict[str, str] | None = None
) -> dict[str, str]:
    """The headers that SigV4-sign this request with the caller's AWS credentials (boto3's chain)."""
    region = region_of(url)
    credentials = boto3.Session().get_credentials()
    if region is None or credentials is None:
        return {}
    parts = urlsplit(url)
    # A WebSocket handshake is signed as the HTTPS GET it starts as.
    https_url = urlunsplit(("https", *parts[1:])) if parts.scheme == "wss" else url
    request = AWSRequest(method=method, url=https_url, data=body, headers=dict(headers or {}))
    SigV4Auth(credentials.get_frozen_credentials(), SERVICE, region).add_auth(request)
    return {k: v for k, v in request.headers.items() if k.lower().startswith(("authorization", "x-amz-"))}


class SigV4(httpx.Auth):
    """httpx auth that signs requests to API Gateway hosts and leaves others untouched."""

    requires_request_body = True

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if region_of(str(request.url)):
            # httpx writes a space in a query value as "+"; SigV4's canonical query wants %20.
            request.url = request.url.copy_with(query=request.url.query.replace(b"+", b"%20"))
            # Sign only what API Gateway checks; httpx adds transport headers afterwards.
            signing = {"host": request.headers["host"]}
            if "content-type" in request.headers:
                signing["content-type"] = request.headers["content-type"]
            request.headers.update(signed_headers(request.method, str(request.url), request.content, signing))
        yield request
