"""The dashboard's static files (`web/`) on the local stack, at `/` beside the API.

The same files go to S3 behind CloudFront on AWS, so the page uses relative paths only. Each
top-level file and folder the page loads gets its own route, so no API path is ever shadowed.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

ENV_WEB_DIR = "FLOWDECK_WEB_DIR"
DEFAULT_WEB_DIR = Path(__file__).resolve().parents[2] / "web"
# What the browser loads; package manifests and the page's own unit tests stay unserved.
SERVED_FOLDERS = ("lib", "views", "node_modules")
SERVED_SUFFIXES = (".html", ".js", ".css", ".svg", ".ico")
# Revalidate on every load (ETag / Last-Modified make it cheap), so an edited file is seen at once.
NO_CACHE = {"Cache-Control": "no-cache"}


def web_dir() -> Path:
    return Path(os.environ.get(ENV_WEB_DIR) or DEFAULT_WEB_DIR)


class _RevalidatedFiles(StaticFiles):
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

    async def page(_: Request) -> Response:
        return FileResponse(index, headers=NO_CACHE)

    routes: list[BaseRoute] = [Route("/", page, methods=["GET", "HEAD"])]
    for path in sorted(root.iterdir()):
        if path.is_file() and path.suffix in SERVED_SUFFIXES:
            routes.append(Route(f"/{path.name}", _file_endpoint(path), methods=["GET", "HEAD"]))
        elif path.is_dir() and path.name in SERVED_FOLDERS:
            routes.append(Mount(f"/{path.name}", app=_RevalidatedFiles(directory=path)))
    return routes


def _file_endpoint(path: Path) -> Callable[[Request], Awaitable[Response]]:
    async def serve(_: Request) -> Response:
        return FileResponse(path, headers=NO_CACHE)

    return serve
