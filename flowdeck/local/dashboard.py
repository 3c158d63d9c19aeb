"""The dashboard's static files (`web/`) on the local stack, at `/` beside the API.

The same files go to S3 behind CloudFront on AWS, so the page uses relative paths only. Each
top-level file and folder the page loads gets its own route, so no API path is ever shadowed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

from flowdeck.local.http import error

ENV_WEB_DIR = "FLOWDECK_WEB_DIR"
# The page's config.json here: the page's origin is the API, X-Flowdeck-User names the person (on AWS
# FlowdeckWebConfig deploys a "cognito" one).
LOCAL_CONFIG = {"mode": "local"}
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# What the browser loads; package manifests and the page's own unit tests stay unserved.
SERVED_FOLDERS = ("lib", "views", "node_modules")
SERVED_SUFFIXES = (".html", ".js", ".css", ".svg", ".ico")
READ_METHODS = ("GET", "HEAD")
# Every method reaches the file routes, so a write gets SPEC §3's JSON refusal, not Starlette's text.
ALL_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"]
# Revalidate on every load (ETag / Last-Modified make it cheap), so an edited file is seen at once.
NO_CACHE = {"Cache-Control": "no-cache"}


def web_dir() -> Path:
    return Path(os.environ.get(ENV_WEB_DIR) or DEFAULT_WEB_DIR)


def _refusal(status: int, method: str, path: str) -> JSONResponse:
    """SPEC §3's error shape, as the API answers (the page's files are read-only)."""
    if status == 405:
        code, message = "MethodNotAllowed", f"{method} {path}: the dashboard's files are read-only (GET)"
    else:
        code, message = "NotFound", f"no dashboard file at {path}"
    return error(status, code, message)


class _RevalidatedFiles(StaticFiles):
    async def get_response(self, path: str, scope: Scope) -> Response:
        try:
            return await super().get_response(path, scope)
        except HTTPException as exc:  # StaticFiles answers plain text; the page's callers expect JSON
            return _refusal(exc.status_code, scope["method"], scope["path"])

    def file_response(
        self,
        full_path: os.PathLike[str] | str,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers.update(NO_CACHE)
        return response


def dashboard_routes(root: Path | None = None) -> list[BaseRoute]:
    """`/` (the page) and the files it loads; none when `web/` is absent (an API-only install)."""
    root = (root or web_dir()).resolve()
    index = root / "index.html"
    if not index.is_file():
        return []

    routes: list[BaseRoute] = [
        Route("/", _file_endpoint(index), methods=ALL_METHODS),
        Route("/config.json", _config_endpoint, methods=ALL_METHODS),
    ]
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix in SERVED_SUFFIXES:
            routes.append(Route(f"/{path.name}", _file_endpoint(path), methods=ALL_METHODS))
        elif path.is_dir() and path.name in SERVED_FOLDERS:
            routes.append(Mount(f"/{path.name}", app=_RevalidatedFiles(directory=path)))
    return routes


def _file_endpoint(path: Path) -> Callable[[Request], Awaitable[Response]]:
    async def serve(request: Request) -> Response:
        if request.method not in READ_METHODS:
            return _refusal(405, request.method, request.url.path)
        return FileResponse(path, headers=NO_CACHE)

    return serve


async def _config_endpoint(request: Request) -> Response:
    """The page's config.json: the local stack trusts the page's origin and X-Flowdeck-User."""
    if request.method not in READ_METHODS:
        return _refusal(405, request.method, request.url.path)
    return JSONResponse(LOCAL_CONFIG, headers=NO_CACHE)
