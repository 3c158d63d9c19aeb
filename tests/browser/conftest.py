"""The dashboard in a real browser: one local stack serving web/, Debian's Chromium through Playwright.

Fixtures: `stack` (the LocalStack, one per session), `api` (httpx client as BROWSER_USER),
`dashboard_url`, `browser` (pytest-playwright's, launched on /usr/bin/chromium), `page` (any page
error or console error fails the test; `console_errors.allow(...)` for an error the test expects).
Helpers: `start_run`, `wait_for_run`, `wait_for_step`, `open_route`, `assert_accessible`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import BrowserContext, ConsoleMessage, Error, Page

from flowdeck.local.stack import LocalStack

HERE = Path(__file__).parent
REPO = HERE.parent.parent
CHROMIUM = Path("/usr/bin/chromium")
AXE_SCRIPT = REPO / "web" / "node_modules" / "axe-core" / "axe.min.js"
FINISHED = {"succeeded", "failed", "cancelled", "timed_out"}
BROWSER_USER = "ui@example.com"
# Playwright's own timeout for every wait and expect: the machine is shared and slow under load.
UI_TIMEOUT_MS = 20_000


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test in this folder `browser` (`-m "not browser"` leaves them out)."""
    for item in items:
        if HERE in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"X-Flowdeck-User": BROWSER_USER}, timeout=30
    ) as client:
        yield client


@pytest.fixture(scope="session")
def dashboard_url(stack: LocalStack) -> str:
    return stack.dashboard_url


# -- Playwright on Debian's Chromium -------------------------------------------------------------
@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict[str, Any]) -> dict[str, Any]:
    """Debian's Chromium (never `playwright install`: it downloads a browser, which fails here)."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `apt-get install -y chromium` (.ci/run does it)")
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} is missing: run `make setup` (npm ci in web/)")
    return {
        **browser_type_launch_args,
        "executable_path": str(CHROMIUM),
        "args": [
            "--headless",
            "--no-sandbox",  # CI runs as root, where Chromium's sandbox cannot start
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict[str, Any]) -> dict[str, Any]:
    return {
        **browser_context_args,
        "viewport": {"width": 1400, "height": 900},
        "locale": "en-US",
        "timezone_id": "UTC",
    }


@dataclass
class ConsoleErrors:
    """Page errors and console errors seen during a test; each fails it unless allowed."""

    seen: list[str] = field(default_factory=list)
    allowed: list[re.Pattern[str]] = field(default_factory=list)

    def allow(self, pattern: str) -> None:
        """Expect an error matching `pattern` (e.g. the browser's log line for a refused request)."""
        self.allowed.append(re.compile(pattern))

    def unexpected(self) -> list[str]:
        return [text for text in self.seen if not any(p.search(text) for p in self.allowed)]


@pytest.fixture
def console_errors() -> ConsoleErrors:
    return ConsoleErrors()


@pytest.fixture
def page(context: BrowserContext, console_errors: ConsoleErrors) -> Iterator[Page]:
    """A fresh page; any uncaught page error or console error fails the test at its end."""
    context.set_default_timeout(UI_TIMEOUT_MS)
    page = context.new_page()

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            # The browser's own "Failed to load resource" line names no URL in its text: add it.
            url = message.location.get("url", "")
            console_errors.seen.append(f"console: {message.text} [{url}]")

    def on_page_error(error: Error) -> None:
        console_errors.seen.append(f"pageerror: {error.message}")

    page.on("console", on_console)
    page.on("pageerror", on_page_error)
    yield page
    # A route handler still fetching when the test ends would fail on the disposed context.
    page.unroute_all(behavior="ignoreErrors")
    unexpected = console_errors.unexpected()
    assert not unexpected, f"the page logged errors: {unexpected}"


@pytest.fixture(scope="session", autouse=True)
def _expect_timeout() -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=UI_TIMEOUT_MS)


# -- helpers ---------------------------------------------------------------------------------------
def open_route(page: Page, dashboard_url: str, route: str, user: str | None = BROWSER_USER) -> None:
    """Open `#/route` as `user` (SPEC §6: `?user=EMAIL` in the page's URL sets the identity)."""
    query = f"?user={user}" if user else ""
    page.goto(f"{dashboard_url}{query}#{route}")


def start_run(api: httpx.Client, workflow: str, user: str | None = None, **inputs: Any) -> str:
    headers = {"X-Flowdeck-User": user} if user else {}
    response = api.post(f"/workflows/{workflow}/runs", json={"inputs": inputs}, headers=headers)
    assert response.status_code == 202, response.text
    return str(response.json()["run_id"])


def wait_for_run(
    api: httpx.Client, run_id: str, statuses: set[str] | None = None, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll until the run reaches one of `statuses` (default: finished); fail the test on timeout."""
    wanted = statuses or FINISHED
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = api.get(f"/runs/{run_id}")
        if response.status_code == 200 and response.json()["status"] in wanted:
            return dict(response.json())
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} not in {wanted} within {timeout}s: {api.get(f'/runs/{run_id}').text}")


def wait_for_step(
    api: httpx.Client, run_id: str, step: str, status: str, timeout: float = 60.0
) -> dict[str, Any]:
    """Poll until one step of a run has `status` (e.g. an approval step `waiting`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/runs/{run_id}").json()
        steps = {s["id"]: s for s in run.get("steps", [])}
        if steps.get(step, {}).get("status") == status:
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"step {step} of {run_id} not {status} within {timeout}s")


def axe_violations(page: Page, impacts: tuple[str, ...] = ("serious", "critical")) -> list[dict[str, Any]]:
    """axe-core's violations of the given impacts on the page as it is now."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.add_script_tag(path=str(AXE_SCRIPT))
    result = page.evaluate("async () => (await window.axe.run(document)).violations")
    return [v for v in result if v.get("impact") in impacts]


def assert_accessible(page: Page) -> None:
    """No serious or critical axe-core violation (the rule, its help text and the offending nodes)."""
    found = axe_violations(page)
    details = [
        f"{v['id']} ({v['impact']}): {v['help']} at {[n['target'] for n in v['nodes']][:5]}" for v in found
    ]
    assert not found, "axe-core found: " + "; ".join(details)
