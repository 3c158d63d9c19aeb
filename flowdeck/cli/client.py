"""A small REST API client for the CLI: identity header, JSON in and out, one-line errors."""

from __future__ import annotations

import getpass
import os
from types import TracebackType
from typing import Any
from urllib.parse import quote

import httpx

from flowdeck import __version__
from flowdeck.cli.sigv4 import SigV4
from flowdeck.constants import LOCAL_API_HOST, LOCAL_API_PORT, USER_HEADER

DEFAULT_API = f"http://{LOCAL_API_HOST}:{LOCAL_API_PORT}"
API_ENV = "FLOWDECK_API"
USER_ENV = "FLOWDECK_USER"

Params = dict[str, Any] | None


class ApiError(Exception):
    """Something the CLI reports on one line and exits 1 for: an error answer or an unreachable API."""

    def __init__(self, message: str, code: str | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.status = status


def default_user() -> str:
    """FLOWDECK_USER, else the OS user name (the local stack trusts it; AWS uses IAM instead)."""
    if user := os.environ.get(USER_ENV, "").strip():
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        # A container may run as a uid with no passwd entry.
        return "anonymous"


def _segment(value: str) -> str:
    return quote(value, safe="")


class ApiClient:
    """The Flowdeck REST API (SPEC §3) over httpx; raises ApiError, never an httpx exception."""

    def __init__(
        self,
        base_url: str = DEFAULT_API,
        user: str | None = None,
        *,
        timeout: float = 30.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.http = httpx.Client(
            base_url=self.base_url,
            headers={USER_HEADER: user or default_user(), "User-Agent": f"flowdeck-cli/{__version__}"},
            timeout=timeout,
            transport=transport,
            # On AWS the API takes IAM (SigV4) auth; the local stack is not signed for.
            auth=SigV4(),
        )

    def request(self, method: str, path: str, *, params: Params = None, body: Any = None) -> Any:
        """The decoded JSON answer of a 2xx; ApiError with the API's own message otherwise."""
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self.http.request(method, path, params=query, json=body)
        except httpx.ConnectError:
            message = f"cannot reach the Flowdeck API at {self.base_url} — is `flowdeck up` running?"
            raise ApiError(message) from None
        except httpx.TimeoutException:
            message = f"the Flowdeck API at {self.base_url} did not answer within {self.timeout:.0f}s"
            raise ApiError(message) from None
        except httpx.HTTPError as exc:
            raise ApiError(f"request to the Flowdeck API at {self.base_url} failed: {exc}") from None
        if response.is_success:
            return response.json() if response.content else None
        raise self.error_for(response, path)

    def error_for(self, response: httpx.Response, path: str) -> ApiError:
        """The API's own `{"error", "message"}` answer as an ApiError, or a plain HTTP one."""
        try:
            answer = response.json()
        except ValueError:
            answer = None
        if isinstance(answer, dict) and "error" in answer:
            code = str(answer["error"])
            return ApiError(f"{code}: {answer.get('message', '')}", code=code, status=response.status_code)
        return ApiError(
            f"HTTP {response.status_code} from {self.base_url}{path} (is this a Flowdeck API?)",
            status=response.status_code,
        )

    # -- SPEC §3 --------------------------------------------------------------------------------
    def list_workflows(self) -> list[dict[str, Any]]:
        return list(self.request("GET", "/workflows")["workflows"])

    def get_workflow(self, name: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/workflows/{_segment(name)}"))

    def start_run(self, workflow: str, inputs: dict[str, Any], idempotency_key: str | None = None) -> str:
        return str(self.start(workflow, inputs, idempotency_key)["run_id"])

    def start(
        self, workflow: str, inputs: dict[str, Any], idempotency_key: str | None = None
    ) -> dict[str, Any]:
        """The 202 answer: {run_id, status} (status queued at the workflow's concurrency limit)."""
        body: dict[str, Any] = {"inputs": inputs}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        return dict(self.request("POST", f"/workflows/{_segment(workflow)}/runs", body=body))

    def list_runs(self, **query: Any) -> dict[str, Any]:
        return dict(self.request("GET", "/runs", params=query))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return dict(self.request("GET", f"/runs/{_segment(run_id)}"))

    # -- lifecycle ------------------------------------------------------------------------------
    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ApiClient:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, error: BaseException | None, trace: TracebackType | None
    ) -> None:
        self.close()
