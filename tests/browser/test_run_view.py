"""The execution view in a real browser: header, graph, step list and the actions each state allows."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Request, Route, expect

from tests.browser.conftest import (
    assert_accessible,
    open_route,
    start_run,
    wait_for_run,
    wait_for_step,
)

STEP_ACTIONS = ("Retry step", "Retry from here", "Skip step", "Approve", "Reject")


@pytest.fixture(scope="module")
def waiting(api: httpx.Client) -> dict[str, Any]:
    """A run-story run waiting for its two approvals (build done, deploy and notify pending)."""
    run_id = start_run(api, "run-story")
    return wait_for_step(api, run_id, "approval", "waiting")


@pytest.fixture(scope="module")
def failed(api: httpx.Client) -> dict[str, Any]:
    """A run-story run approved by both approvers whose deploy failed with exit code 3."""
    run_id = start_run(api, "run-story")
    wait_for_step(api, run_id, "approval", "waiting")
    for user in ("ui@example.com", "rita@example.com"):
        answer = api.post(
            f"/runs/{run_id}/steps/approval/approve", json={}, headers={"X-Flowdeck-User": user}
        )
        assert answer.status_code < 300, answer.text
    return wait_for_run(api, run_id)


def step_buttons(page: Page, name: str) -> list[str]:
    """The action buttons of one step row, by accessible name."""
    row = page.locator(f".step-list [data-step='{name}']")
    return [b.get_attribute("aria-label") or b.inner_text() for b in row.get_by_role("button").all()]


def test_statuses_icons_and_the_graph_of_a_waiting_run(page: Page, dashboard_url: str, waiting) -> None:
    run_id = waiting["run_id"]
    open_route(page, dashboard_url, f"/runs/{run_id}")
    header = page.locator("[data-run-status]")
    expect(header).to_have_attribute("data-run-status", "waiting")
    expect(header).to_contain_text(run_id)
    expect(header).to_contain_text("run-story")
    expect(header).to_contain_text("ui@example.com")
    expected = {"build": "succeeded", "approval": "waiting", "deploy": "pending", "notify": "pending"}
    for step, status in expected.items():
        # The same step and status in the graph and in the list, each with its icon and word.
        for where in (".dag", ".step-list"):
            node = page.locator(f"{where} [data-step='{step}']")
            expect(node).to_have_attribute("data-status", status)
            expect(node.locator("svg.status-icon")).to_have_count(1)
            expect(node).to_contain_text(status)
    # The graph has an edge per `needs` (build -> approval -> deploy -> notify).
    expect(page.locator(".dag-edges polyline")).to_have_count(3)
    # A click on a node selects its step: the log panel shows that step's lines.
    page.locator(".dag [data-step='build']").click()
    expect(page.locator(".dag [data-step='build']")).to_have_attribute("aria-pressed", "true")
    expect(page.get_by_label("Step", exact=True)).to_have_value("build")
    assert_accessible(page)


def test_a_waiting_approval_shows_its_request_and_only_approve_reject(
    page: Page, dashboard_url: str, waiting
) -> None:
    open_route(page, dashboard_url, f"/runs/{waiting['run_id']}")
    approval = page.get_by_role("group", name="Approval approval")
    expect(approval).to_contain_text("Deploy 3 changes to staging?")
    expect(approval).to_contain_text("0 of 2 approvals")
    expect(approval).to_contain_text("ui@example.com")
    expect(approval).to_contain_text("rita@example.com")
    expect(approval).to_contain_text("inbox: in the inbox")
    approval.get_by_role("button", name="View plan").click()
    expect(approval.locator(".approval-plan")).to_contain_text('"add": 3')
    approval.get_by_role("button", name="Preview report.txt").click()
    expect(approval.locator(".approval-plan")).to_contain_text("all 200 checks passed")
    # While a person must decide, no retry or skip is offered anywhere; the run can be cancelled.
    assert step_buttons(page, "approval")[-2:] == ["Approve", "Reject"]
    for step in ("build", "deploy", "notify"):
        assert not [b for b in step_buttons(page, step) if b.startswith(STEP_ACTIONS)]
    for name in ("Cancel", "Cancel with cleanup", "Force cancel"):
        expect(page.locator(".run-header").get_by_role("button", name=name, exact=True)).to_be_visible()


def test_approve_sends_the_decision_with_its_comment(
    page: Page, dashboard_url: str, api: httpx.Client, waiting
) -> None:
    run_id = waiting["run_id"]
    open_route(page, dashboard_url, f"/runs/{run_id}")
    page.get_by_label("Comment").fill("looks right")
    with page.expect_request(lambda r: r.method == "POST" and "/steps/approval/approve" in r.url) as sent:
        page.get_by_role("button", name="Approve", exact=True).click()
    request: Request = sent.value
    assert request.post_data_json == {"comment": "looks right"}
    assert request.headers["x-flowdeck-user"] == "ui@example.com"
    expect(page.locator(".approval-progress")).to_have_text("1 of 2 approvals")
    approval = {s["id"]: s for s in api.get(f"/runs/{run_id}").json()["steps"]}["approval"]["approval"]
    assert [(a["by"], a.get("comment")) for a in approval["approvals"]] == [("ui@example.com", "looks right")]


def test_a_refused_decision_shows_the_apis_message(
    page: Page, dashboard_url: str, waiting, console_errors
) -> None:
    console_errors.allow("403")
    open_route(page, dashboard_url, f"/runs/{waiting['run_id']}", user="mallory@example.com")
    page.get_by_role("button", name="Reject", exact=True).click()
    alert = page.locator(".error-banner")
    expect(alert).to_contain_text("mallory@example.com may not decide step approval")
    expect(page.locator(".step-list [data-step='approval']")).to_have_attribute("data-status", "waiting")


def test_the_failure_panel_and_retry_step_starts_a_linked_run(
    page: Page, dashboard_url: str, api: httpx.Client, failed
) -> None:
    run_id = failed["run_id"]
    open_route(page, dashboard_url, f"/runs/{run_id}")
    expect(page.locator("[data-run-status]")).to_have_attribute("data-run-status", "failed")
    panel = page.locator(".failure")
    expect(panel).to_contain_text("Failed: deploy")
    expect(panel.locator(".failure-facts")).to_contain_text("3")  # the exit code
    expect(panel.locator(".failure-lines")).to_contain_text("Password must be at least 8 characters.")
    expect(page.locator(".dag [data-step='deploy']")).to_have_attribute("data-status", "failed")
    # A finished run: no cancel, no decision; retry from any step, retry step on the failed one.
    expect(page.get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    expect(page.get_by_role("button", name="Approve", exact=True)).to_have_count(0)
    assert step_buttons(page, "deploy")[-2:] == ["Retry step deploy", "Retry from here deploy"]
    assert step_buttons(page, "build")[-1:] == ["Retry from here build"]
    assert_accessible(page)
    panel.get_by_role("button", name="View full log").click()
    expect(page.get_by_label("Step", exact=True)).to_have_value("deploy")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"/runs/{run_id}/retry")
    ) as sent:
        panel.get_by_role("button", name="Retry step deploy").click()
    assert sent.value.post_data_json == {"from_step": "deploy"}
    # The page follows the new run, which links back to the one it retries.
    expect(page.locator(".run-header")).to_contain_text(f"Retry of{run_id}")
    new_id = page.url.rsplit("/", 1)[-1]
    retry = api.get(f"/runs/{new_id}").json()
    assert (retry["retry_of"], retry["retry_from"]) == (run_id, ["deploy"])


def test_a_failed_runs_step_that_never_ran_reads_skipped_with_why(
    page: Page, dashboard_url: str, failed
) -> None:
    open_route(page, dashboard_url, f"/runs/{failed['run_id']}")
    row = page.locator(".step-list [data-step='notify']")
    expect(row).to_have_attribute("data-status", "skipped")
    expect(row.locator(".step-not-run")).to_have_text("not run: the run failed at deploy")
    node = page.locator(".dag [data-step='notify']")
    expect(node).to_have_attribute("data-status", "skipped")
    expect(node).to_have_attribute("title", "not run: the run failed at deploy")
    # The step that ran and failed says nothing of the kind.
    expect(page.locator(".step-list [data-step='deploy'] .step-not-run")).to_have_count(0)


def test_a_step_paused_on_failure_offers_retry_and_skip(
    page: Page, dashboard_url: str, api: httpx.Client
) -> None:
    run_id = start_run(api, "pause-skip")
    wait_for_step(api, run_id, "warm-cache", "waiting")
    open_route(page, dashboard_url, f"/runs/{run_id}")
    expect(page.locator(".failure")).to_contain_text("Paused after a failure: warm-cache")
    assert step_buttons(page, "warm-cache")[-2:] == ["Retry step warm-cache", "Skip step warm-cache"]
    with page.expect_request(lambda r: r.method == "POST" and "/steps/warm-cache/skip" in r.url):
        page.locator(".step-list").get_by_role("button", name="Skip step warm-cache").click()
    expect(page.locator(".dag [data-step='warm-cache']")).to_have_attribute("data-status", "skipped")
    expect(page.locator("[data-run-status]")).to_have_attribute("data-run-status", "succeeded")


def test_outputs_artifacts_and_costs_tabs(page: Page, dashboard_url: str, failed) -> None:
    open_route(page, dashboard_url, f"/runs/{failed['run_id']}")
    page.get_by_role("tab", name="Outputs").click()
    expect(page.locator(".outputs")).to_contain_text('"build": {')
    expect(page.locator(".outputs")).to_contain_text('"change": 1')
    page.get_by_role("tab", name="Artifacts").click()
    row = page.locator("[data-artifact='build/report.txt']")
    expect(row).to_contain_text("22 B")
    row.get_by_role("button", name="Preview report.txt").click()
    expect(page.locator(".artifacts .preview")).to_have_text("all 200 checks passed\n")
    with page.expect_download() as one:
        row.get_by_role("link", name="Download report.txt").click()
    assert Path(one.value.path()).read_text() == "all 200 checks passed\n"
    with page.expect_download() as whole:
        page.get_by_role("link", name="Download all as ZIP").click()
    with zipfile.ZipFile(whole.value.path()) as archive:
        assert [name for name in archive.namelist() if name.endswith("report.txt")] == ["build/report.txt"]
    page.get_by_role("tab", name="Costs").click()
    expect(page.locator(".costs-total")).to_contain_text("Total: $")
    for step in ("build", "deploy"):
        expect(page.locator(".costs").get_by_role("rowheader", name=step)).to_be_visible()
    by_model = page.locator(".costs tr", has=page.get_by_role("rowheader", name="claude-opus-4"))
    expect(by_model).to_contain_text("1,200 / 300")
    expect(by_model).to_contain_text("$0.041")


def test_a_cancel_under_way_shows_cancelling(page: Page, dashboard_url: str, waiting) -> None:
    """While a cancel is under way the run keeps its status and carries cancel_requested_at (SPEC §2)."""
    run_id = waiting["run_id"]

    def under_way(route: Route) -> None:
        answer = route.fetch()
        run = answer.json() | {
            "cancel_requested_at": "2026-12-06T04:00:00+00:00",
            "cancel_mode": "cleanup",
            "cancel_requested_by": "ops@example.com",
        }
        route.fulfill(response=answer, json=run)

    page.route(re.compile(rf"/runs/{run_id}$"), under_way)
    open_route(page, dashboard_url, f"/runs/{run_id}")
    expect(page.locator("[data-run-status]")).to_have_attribute("data-run-status", "waiting")
    expect(page.locator(".cancelling")).to_have_text("Cancelling… (cleanup by ops@example.com)")


def test_an_unknown_run_says_so(page: Page, dashboard_url: str, console_errors) -> None:
    console_errors.allow("404")
    open_route(page, dashboard_url, "/runs/no-such-run")
    expect(page.get_by_role("alert").filter(has_text="No run with id no-such-run.")).to_be_visible()
    expect(page.locator("[data-run-status]")).to_have_count(0)
