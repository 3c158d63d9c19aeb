"""The local stack serves the dashboard (web/) at `/` beside the API, and the page's `?user=` on `/ws`."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

from flowdeck.local.dashboard import dashboard_routes
from flowdeck.local.http import ApiServer
from flowdeck.local.websocket import WebSocketGateway


@pytest.fixture
def web(tmp_path: Path) -> Path:
    """A small web/ folder: the page, a module, a helper, a package, and files that must stay unserved."""
    root = tmp_path / "web"
    (root / "lib").mkdir(parents=True)
    (root / "node_modules" / "preact" / "dist").mkdir(parents=True)
    (root / "tests").mkdir()
    (root / "index.html").write_text("<!doctype html><title>Flowdeck</title>")
    (root / "app.js").write_text("export {};")
    (root / "lib" / "format.js").write_text("export const x = 1;")
    (root / "node_modules" / "preact" / "dist" / "preact.mjs").write_text("export const h = 1;")
    (root / "package.json").write_text("{}")
    (root / "tests" / "format.test.js").write_text("// test")
    return root


class Connects:
    """A WebSocket handler that records the headers of each `$connect`."""

    def __init__(self) -> None:
        self.headers: list[dict[str, str]] = []
        self.lock = threading.Lock()

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        if event["requestContext"]["routeKey"] == "$connect":
            with self.lock:
                self.headers.append(dict(event.get("headers") or {}))
        return {"statusCode": 200}


@pytest.fixture
def connects() -> Connects:
    return Connects()


@pytest.fixture
def server(web: Path, connects: Connects) -> Iterator[ApiServer]:
    gateway = WebSocketGateway(connects)

    def api(event: dict[str, Any], context: Any) -> dict[str, Any]:
        return {"statusCode": 404, "body": f"api {event['path']}"}

    with ApiServer(api, port=0, routes=[*gateway.routes(), *dashboard_routes(web)]) as server:
        yield server
    gateway.close()


def test_the_page_and_its_modules_are_served_and_revalidated(server: ApiServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert page.headers["cache-control"] == "no-cache"
        assert "Flowdeck" in page.text
        module = client.get("/app.js")
        assert module.status_code == 200
        assert "javascript" in module.headers["content-type"]
        assert client.get("/lib/format.js").status_code == 200
        package = client.get("/node_modules/preact/dist/preact.mjs")
        assert "javascript" in package.headers["content-type"]
        assert package.headers["cache-control"] == "no-cache"


def test_the_local_config_json_says_local_mode_and_is_read_only(server: ApiServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        config = client.get("/config.json")
        assert config.status_code == 200
        assert config.json() == {"mode": "local"}
        assert config.headers["cache-control"] == "no-cache"
        refused = client.put("/config.json", content=b"{}")
        assert (refused.status_code, refused.json()["error"]) == (405, "MethodNotAllowed")


def test_api_paths_and_unserved_files_go_to_the_api(server: ApiServer) -> None:
    with httpx.Client(base_url=server.url) as client:
        for path in ("/runs", "/workflows/x", "/package.json", "/tests/format.test.js"):
            answer = client.get(path)
            assert answer.text == f"api {path}", path
        # Nothing outside web/ is reachable through a served folder.
        escaped = client.get("/lib/%2e%2e/%2e%2e/index.html")
        assert escaped.status_code == 404
        assert "Flowdeck" not in escaped.text


def test_writes_and_missing_files_get_the_api_error_shape(server: ApiServer, web: Path) -> None:
    with httpx.Client(base_url=server.url) as client:
        for method, path in (("POST", "/"), ("PUT", "/app.js"), ("DELETE", "/lib/format.js")):
            answer = client.request(method, path, content=b"x")
            assert answer.status_code == 405, (method, path)
            assert answer.json()["error"] == "MethodNotAllowed"
            assert path in answer.json()["message"]
        missing = client.get("/lib/nope.js")
        assert missing.status_code == 404
        assert missing.json() == {"error": "NotFound", "message": "no dashboard file at /lib/nope.js"}
    # Nothing was written or removed.
    assert (web / "app.js").read_text() == "export {};"
    assert (web / "lib" / "format.js").exists()


def test_no_web_folder_serves_nothing(tmp_path: Path) -> None:
    assert dashboard_routes(tmp_path / "absent") == []


def test_the_page_identity_rides_on_the_websocket_url(server: ApiServer, connects: Connects) -> None:
    url = f"ws://{server.host}:{server.port}/ws"
    with connect(f"{url}?user=jane%40example.com"):
        pass
    with connect(url):
        pass
    # A real header (the CLI's) wins over the query parameter.
    with connect(
        f"{url}?user=mallory@example.com", additional_headers={"X-Flowdeck-User": "sam@example.com"}
    ):
        pass
    assert [h.get("x-flowdeck-user") for h in connects.headers] == [
        "jane@example.com",
        None,
        "sam@example.com",
    ]
