"""Run history in the browser (`#/runs`): filters in the URL drive GET /runs, sort, paging, live rows."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import parse_qs, urlparse

import httpx
import pytest
from playwright.sync_api import Page, Request, expect
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack
from flowdeck.triggers.signatures import sign
from tests.browser.conftest import (
    BROWSER_USER,
    ConsoleErrors,
    assert_accessible,
    open_route,
    start_run,
    wait_for_run,
    wait_for_step,
)


@pytest.fixture(scope="module")
def history(api: httpx.Client) -> dict[str, Any]:
    """Given: a failed run, its retry, two succeeded runs by different people, all finished."""
    failed = start_run(api, "broken")
    done_by_ui = start_run(api, "ui-form", note="first")
    done_by_rita = start_run(api, "ui-form", user="rita@example.com", note="second")
    for run_id in (failed, done_by_ui, done_by_rita):
        wait_for_run(api, run_id)
    retry = api.post(f"/runs/{failed}/retry", json={})
    assert retry.status_code == 202, retry.text
    retried = str(retry.json()["run_id"])
    wait_for_run(api, retried)
    return {"failed": failed, "retry": retried, "ui": done_by_ui, "rita": done_by_rita}


def set_webhook_secret(stack: LocalStack, name: str, value: str) -> None:
    result = CliRunner().invoke(
        app, ["secrets", "set-webhook", name, "--endpoint-url", stack.endpoint_url], input=value + "\n"
    )
    assert result.exit_code == 0, result.output


def api_query(request: Request) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlparse(request.url).query).items()}


def is_history_read(request: Request) -> bool:
    return urlparse(request.url).path == "/runs" and request.method == "GET"


def hash_query(page: Page) -> dict[str, str]:
    fragment = urlparse(page.url).fragment
    return {k: v[0] for k, v in parse_qs(fragment.partition("?")[2]).items()}


def test_rows_show_status_trigger_and_retry_links_and_open_their_run(
    page: Page, dashboard_url: str, history: dict[str, Any]
) -> None:
    open_route(page, dashboard_url, "/runs")
    failed = page.locator(f'tr[data-run="{history["failed"]}"]')
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed.get_by_text("failed", exact=True)).to_be_visible()
    expect(failed.locator("svg.status-icon")).to_have_count(1)
    expect(failed).to_contain_text("manual")
    # Retry links, both ways.
    expect(failed).to_contain_text(f"retried by {history['retry']}")
    retry = page.locator(f'tr[data-run="{history["retry"]}"]')
    expect(retry).to_contain_text(f"retry of {history['failed']}")
    expect(page.locator(f'tr[data-run="{history["rita"]}"]')).to_contain_text("rita@example.com")
    assert_accessible(page)

    retry.get_by_role("link", name=f"{history['failed']}").click()
    expect(page).to_have_url(re.compile(rf"#/runs/{history['failed']}$"))
    page.go_back()
    page.locator(f'tr[data-run="{history["ui"]}"]').locator("td").nth(2).click()
    expect(page).to_have_url(re.compile(rf"#/runs/{history['ui']}$"))


def test_filters_live_in_the_url_and_drive_the_query(
    page: Page, dashboard_url: str, history: dict[str, Any], console_errors: ConsoleErrors
) -> None:
    open_route(page, dashboard_url, "/runs")
    expect(page.locator(f'tr[data-run="{history["ui"]}"]')).to_be_visible()

    with page.expect_request(lambda r: is_history_read(r) and "status=failed" in r.url) as read:
        page.get_by_label("Status").select_option("failed")
    assert api_query(read.value)["status"] == "failed"
    assert hash_query(page)["status"] == "failed"
    expect(page.locator(f'tr[data-run="{history["failed"]}"]')).to_be_visible()
    expect(page.locator("tbody tr[data-run]:not([data-status=failed])")).to_have_count(0)

    with page.expect_request(lambda r: is_history_read(r) and "workflow=" in r.url) as read:
        page.get_by_label("Workflow").select_option("broken")
    assert {"status": "failed", "workflow": "broken"}.items() <= api_query(read.value).items()

    with page.expect_request(lambda r: is_history_read(r) and "since=" in r.url) as read:
        page.get_by_label("Date range").select_option("24h")
    assert hash_query(page)["range"] == "24h"
    assert "since" in api_query(read.value)

    # The user filter is `started_by` in the API; a URL opened directly sets the controls.
    open_route(page, dashboard_url, "/runs?user=rita@example.com&trigger=manual")
    expect(page.get_by_label("Trigger")).to_have_value("manual")
    expect(page.get_by_label("Started by")).to_have_value("rita@example.com")
    expect(page.locator(f'tr[data-run="{history["rita"]}"]')).to_be_visible()
    expect(page.locator(f'tr[data-run="{history["ui"]}"]')).to_have_count(0)

    with page.expect_request(lambda r: is_history_read(r) and "until=" in r.url) as read:
        page.get_by_label("Date range").select_option("custom")
        page.get_by_label("To", exact=True).fill("2099-01-01T00:00")
        page.get_by_label("To", exact=True).dispatch_event("change")
    assert api_query(read.value)["until"] == "2099-01-01T00:00:00.000Z"  # the browser runs in UTC
    assert hash_query(page)["range"] == "custom"

    # A range the API refuses is shown with the API's words, not as an empty table.
    console_errors.allow(r"status of 422 .*/runs\?")
    page.get_by_label("From").fill("2099-06-01T00:00")
    page.get_by_label("From").dispatch_event("change")
    expect(page.get_by_role("alert")).to_contain_text("since is after until")


def test_sorting_and_cursor_paging(page: Page, dashboard_url: str, history: dict[str, Any]) -> None:
    open_route(page, dashboard_url, "/runs?limit=2")
    rows = page.locator("tbody tr[data-run]")
    expect(rows).to_have_count(2)
    first_page = rows.evaluate_all("rows => rows.map(r => r.dataset.run)")

    with page.expect_request(lambda r: is_history_read(r) and "cursor=" in r.url):
        page.get_by_role("button", name="Next page").click()
    assert "cursor" in hash_query(page)
    expect(rows.first).not_to_have_attribute("data-run", first_page[0])
    second_page = rows.evaluate_all("rows => rows.map(r => r.dataset.run)")
    assert not set(first_page) & set(second_page)

    page.get_by_role("button", name="Previous page").click()
    expect(rows.first).to_have_attribute("data-run", first_page[0])
    expect(page.get_by_role("button", name="Previous page")).to_be_disabled()

    with page.expect_request(lambda r: is_history_read(r) and "sort=cost" in r.url) as read:
        page.get_by_role("button", name="Sort by Cost").click()
    assert api_query(read.value)["order"] == "desc"
    assert "cursor" not in hash_query(page)
    expect(page.get_by_role("columnheader", name=re.compile("Sort by Cost"))).to_have_attribute(
        "aria-sort", "descending"
    )
    with page.expect_request(lambda r: is_history_read(r) and "order=asc" in r.url):
        page.get_by_role("button", name=re.compile("Sort by Cost")).click()
    assert {"sort": "cost", "order": "asc"}.items() <= hash_query(page).items()

    with page.expect_request(lambda r: is_history_read(r) and "sort=duration" in r.url):
        page.get_by_role("button", name="Sort by Duration").click()


def test_a_waiting_row_turns_succeeded_live(page: Page, dashboard_url: str, api: httpx.Client) -> None:
    run_id = start_run(api, "ui-approve")
    wait_for_step(api, run_id, "approval", "waiting")
    open_route(page, dashboard_url, "/runs?workflow=ui-approve")
    row = page.locator(f'tr[data-run="{run_id}"]')
    expect(row).to_have_attribute("data-status", "waiting")

    decided = api.post(f"/runs/{run_id}/steps/approval/approve", json={"comment": "ok"})
    assert decided.status_code == 202, decided.text
    # No reload: the row follows the run.
    expect(row).to_have_attribute("data-status", "succeeded", timeout=30_000)
    expect(row.get_by_text("succeeded", exact=True)).to_be_visible()


def test_user_picker_sets_the_identity_on_every_request(page: Page, dashboard_url: str) -> None:
    open_route(page, dashboard_url, "/runs")
    expect(page.get_by_label("Signed in as")).to_have_value(BROWSER_USER)
    with page.expect_request(is_history_read) as read:
        page.reload()
    assert read.value.headers.get("x-flowdeck-user") == BROWSER_USER

    page.get_by_label("Signed in as").fill("rita@example.com")
    page.get_by_role("button", name="Switch user").click()
    with page.expect_request(lambda r: urlparse(r.url).path == "/inbox") as read:
        page.get_by_role("link", name="Inbox").click()
    assert read.value.headers.get("x-flowdeck-user") == "rita@example.com"
    # Kept until changed: a new visit without ?user= is still rita.
    page.goto(f"{dashboard_url}#/runs")
    expect(page.get_by_label("Signed in as")).to_have_value("rita@example.com")


def test_the_trigger_column_says_what_started_each_run(
    page: Page, dashboard_url: str, api: httpx.Client, stack: LocalStack
) -> None:
    set_webhook_secret(stack, "github", "ui-github-secret")
    set_webhook_secret(stack, "e2e-deploy-hook", "ui-deploy-secret")
    push = json.dumps(
        {
            "ref": "refs/heads/main",
            "after": "abc1234def5678abc1234def5678abc1234def56",
            "repository": {"full_name": "flowdeck-e2e/hooks"},
            "pusher": {"name": "hubot"},
        }
    ).encode()
    pushed = api.post(
        "/hooks/github",
        content=push,
        headers={
            "X-GitHub-Event": "push",
            "X-GitHub-Delivery": "ui-push-1",
            "X-Hub-Signature-256": sign("ui-github-secret", push),
        },
    )
    assert pushed.status_code == 202, pushed.text
    [git_run] = [r["run_id"] for r in pushed.json()["runs"]]
    hook = json.dumps({"env": "staging"}).encode()
    hooked = api.post(
        "/hooks/hook-deploy", content=hook, headers={"X-Flowdeck-Signature": sign("ui-deploy-secret", hook)}
    )
    assert hooked.status_code == 202, hooked.text
    wait_for_run(api, git_run)
    wait_for_run(api, hooked.json()["run_id"])

    open_route(page, dashboard_url, "/runs")
    expect(page.locator(f'tr[data-run="{git_run}"]')).to_contain_text("Git push main @ abc1234")
    expect(page.locator(f'tr[data-run="{git_run}"]')).to_contain_text("hubot")
    expect(page.locator(f'tr[data-run="{hooked.json()["run_id"]}"]')).to_contain_text(
        "webhook: e2e-deploy-hook"
    )
