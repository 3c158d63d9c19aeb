"""The inbox in the browser (`#/inbox`): approvals waiting for the signed-in person, decided inline."""

from __future__ import annotations

import json
from urllib.parse import urlparse

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    ConsoleErrors,
    assert_accessible,
    open_route,
    start_run,
    wait_for_run,
    wait_for_step,
)


def waiting_approval(api: httpx.Client) -> str:
    run_id = start_run(api, "ui-approve")
    wait_for_step(api, run_id, "approval", "waiting")
    return run_id


def test_approve_inline_with_a_comment(page: Page, dashboard_url: str, api: httpx.Client) -> None:
    run_id = waiting_approval(api)
    open_route(page, dashboard_url, "/inbox")
    card = page.get_by_role("article", name=f"Approval approval of {run_id}")
    expect(card).to_contain_text("ui-approve")
    expect(card).to_contain_text("Apply 3 additions to staging?")
    expect(card).to_contain_text("0 of 1 approvals")
    expect(card.get_by_role("link", name=run_id)).to_be_visible()
    # The outputs so far, to decide from the page.
    expect(card.get_by_label("Outputs of plan")).to_contain_text('"add": 3')
    assert_accessible(page)

    card.get_by_label("Comment").fill("ship it")
    with page.expect_request(lambda r: r.method == "POST" and "/steps/approval/" in r.url) as sent:
        card.get_by_role("button", name=f"Approve approval of {run_id}").click()
    assert urlparse(sent.value.url).path == f"/runs/{run_id}/steps/approval/approve"
    assert json.loads(sent.value.post_data or "{}") == {"comment": "ship it"}
    assert sent.value.headers["x-flowdeck-user"] == "ui@example.com"
    expect(page.get_by_role("status")).to_contain_text(f"Approved approval of run {run_id}")
    expect(card).to_have_count(0)
    run = wait_for_run(api, run_id)
    assert run["status"] == "succeeded"
    decision = next(s for s in run["steps"] if s["id"] == "approval")["approval"]["approvals"][0]
    assert decision["by"] == "ui@example.com"


def test_reject_as_another_approver(page: Page, dashboard_url: str, api: httpx.Client) -> None:
    run_id = waiting_approval(api)
    open_route(page, dashboard_url, "/inbox", user="rita@example.com")
    card = page.get_by_role("article", name=f"Approval approval of {run_id}")
    card.get_by_label("Comment").fill("not today")
    with page.expect_request(lambda r: r.method == "POST" and "/steps/approval/" in r.url) as sent:
        card.get_by_role("button", name=f"Reject approval of {run_id}").click()
    assert urlparse(sent.value.url).path == f"/runs/{run_id}/steps/approval/reject"
    assert json.loads(sent.value.post_data or "{}") == {"comment": "not today"}
    assert sent.value.headers["x-flowdeck-user"] == "rita@example.com"
    expect(card).to_have_count(0)
    assert wait_for_run(api, run_id)["status"] == "failed"


def test_someone_who_may_not_approve_sees_nothing(page: Page, dashboard_url: str, api: httpx.Client) -> None:
    waiting_approval(api)
    open_route(page, dashboard_url, "/inbox", user="nobody@example.com")
    expect(page.get_by_text("Nothing is waiting for you.")).to_be_visible()
    expect(page.get_by_role("article")).to_have_count(0)


def test_a_refused_decision_shows_the_api_message(
    page: Page, dashboard_url: str, api: httpx.Client, console_errors: ConsoleErrors
) -> None:
    run_id = waiting_approval(api)
    open_route(page, dashboard_url, "/inbox")
    card = page.get_by_role("article", name=f"Approval approval of {run_id}")
    expect(card).to_be_visible()
    # Decided elsewhere meanwhile: the page's click is refused and says why.
    api.post(f"/runs/{run_id}/steps/approval/reject", json={"comment": "elsewhere"}).raise_for_status()
    console_errors.allow(r"status of 409 .*steps/approval/approve")
    card.get_by_role("button", name=f"Approve approval of {run_id}").click()
    banner = page.get_by_role("alert")
    refusal = api.post(f"/runs/{run_id}/steps/approval/approve", json={}).json()
    expect(banner).to_contain_text(refusal["message"])
    expect(banner).to_contain_text(refusal["error"])
