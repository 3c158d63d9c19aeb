"""Workflows in the browser (`#/workflows`, `#/workflows/{wf}`): graph, Run form, triggers, pause, costs."""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import httpx
from playwright.sync_api import Page, expect

from tests.browser.conftest import (
    ConsoleErrors,
    assert_accessible,
    open_route,
    start_run,
    wait_for_run,
)


def test_the_list_links_each_definition(page: Page, dashboard_url: str) -> None:
    open_route(page, dashboard_url, "/workflows")
    row = page.locator('tr[data-workflow="hook-deploy"]')
    expect(row).to_contain_text("manual, webhook")
    expect(page.locator('tr[data-workflow="ui-form"]')).to_contain_text(
        "Typed inputs for the dashboard's Run form"
    )
    assert_accessible(page)
    page.get_by_role("link", name="ui-form", exact=True).click()
    expect(page).to_have_url(re.compile(r"#/workflows/ui-form$"))
    expect(page.get_by_role("heading", name="ui-form", level=1)).to_be_visible()


def test_the_run_form_sends_typed_inputs_and_opens_the_new_run(
    page: Page, dashboard_url: str, api: httpx.Client
) -> None:
    open_route(page, dashboard_url, "/workflows/ui-form")
    expect(page.locator('[data-step="echo"]')).to_be_visible()
    form = page.get_by_role("form", name="Run ui-form")
    expect(form.get_by_label("environment")).to_have_value("staging")
    expect(form.get_by_label("replicas")).to_have_value("2")
    assert_accessible(page)

    # A bad value is named beside its field and nothing is sent.
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url) if r.method == "POST" else None)
    form.get_by_label("replicas").fill("2.5")
    form.get_by_role("button", name="Run ui-form").click()
    expect(form.get_by_text("replicas must be a whole number")).to_be_visible()
    expect(form.get_by_text("note is required")).to_be_visible()
    assert requests == []

    form.get_by_label("environment").select_option("production")
    form.get_by_label("replicas").fill("4")
    form.get_by_label("dry_run").check()
    form.get_by_label("note").fill("from the page")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith("/workflows/ui-form/runs")
    ) as sent:
        form.get_by_role("button", name="Run ui-form").click()
    sent_inputs = json.loads(sent.value.post_data or "{}")["inputs"]
    assert sent_inputs == {
        "environment": "production",
        "replicas": 4,
        "ratio": 0.5,
        "dry_run": True,
        "note": "from the page",
    }
    expect(page).to_have_url(re.compile(r"#/runs/[\w-]+$"))
    run_id = urlparse(page.url).fragment.rsplit("/", 1)[-1]
    run = wait_for_run(api, run_id)
    assert run["inputs"] == sent_inputs
    assert run["started_by"] == "ui@example.com"


def test_triggers_show_next_fire_times_and_why_a_delivery_was_refused(
    page: Page, dashboard_url: str, api: httpx.Client
) -> None:
    # An unsigned delivery is refused, and recorded with the reason.
    refused = api.post(
        "/hooks/hook-deploy", content=b'{"env": "staging"}', headers={"X-Flowdeck-Delivery": "ui-1"}
    )
    assert refused.status_code == 401, refused.text
    open_route(page, dashboard_url, "/workflows/hook-deploy")
    triggers = page.get_by_role("list", name="Triggers")
    expect(triggers).to_contain_text("webhook secret e2e-deploy-hook")
    expect(triggers).to_contain_text("POST /hooks/hook-deploy")
    row = page.get_by_role("table", name="Recent deliveries").locator('tr[data-outcome="refused"]').first
    expect(row).to_contain_text("ui-1")
    expect(row).to_contain_text("X-Flowdeck-Signature")

    # The graph's nodes show each step's definition.
    page.locator('[data-step="deploy"]').click()
    step = page.get_by_role("region", name="Step deploy")
    expect(step.get_by_role("heading")).to_have_text("deploy (run)")
    expect(step).to_contain_text('print("deploy", i["version"]')
    expect(step).to_contain_text("nothing (it starts the run)")

    open_route(page, dashboard_url, "/workflows/scheduled")
    expect(page.get_by_role("list", name="Next fire times")).to_contain_text("2030-01-01")
    expect(page.get_by_role("list", name="Triggers")).to_contain_text("cron(30 5 1 1 ? 2030) (Europe/Paris)")


def test_pause_sends_the_request_and_shows_the_answer(
    page: Page, dashboard_url: str, api: httpx.Client, console_errors: ConsoleErrors
) -> None:
    open_route(page, dashboard_url, "/workflows/ui-paused")
    expect(page.get_by_text("active", exact=True)).to_be_visible()
    page.get_by_label("Reason").fill("freeze")
    # Until PUT /workflows/{wf}/state exists the API refuses it: the page must say so, not swallow it.
    console_errors.allow(r"status of 40[45] .*/workflows/ui-paused/state")
    with page.expect_response(lambda r: r.url.endswith("/workflows/ui-paused/state")) as answered:
        page.get_by_role("button", name="Pause", exact=True).click()
    response = answered.value
    assert response.request.method == "PUT"
    assert json.loads(response.request.post_data or "{}") == {"active": False, "reason": "freeze"}
    if response.ok:
        expect(page.get_by_text("paused", exact=True)).to_be_visible()
        assert api.get("/workflows/ui-paused").json()["active"] is False
        with page.expect_request(lambda r: r.url.endswith("/workflows/ui-paused/state")) as resumed:
            page.get_by_role("button", name="Resume", exact=True).click()
        assert json.loads(resumed.value.post_data or "{}") == {"active": True}
        expect(page.get_by_text("active", exact=True)).to_be_visible()
    else:
        expect(page.get_by_role("alert")).to_contain_text(response.json()["message"])


def test_the_cost_trend_flags_a_regression(page: Page, dashboard_url: str, api: httpx.Client) -> None:
    baseline = [start_run(api, "ui-costly", tokens=1000) for _ in range(5)]
    for run_id in baseline:
        wait_for_run(api, run_id)
    spike = start_run(api, "ui-costly", tokens=2_000_000)
    wait_for_run(api, spike)

    open_route(page, dashboard_url, "/workflows/ui-costly")
    chart = page.get_by_role("img", name=re.compile("Cost of the last 6 runs"))
    expect(chart).to_have_attribute("aria-label", re.compile("1 flagged as regressions"))
    expect(page.locator(f'rect[data-run="{spike}"]')).to_have_attribute("data-regression", "true")
    expect(page.locator('rect[data-regression="false"]')).to_have_count(5)
    regressions = page.get_by_role("list", name="Cost regressions")
    expect(regressions.get_by_role("link", name=spike)).to_be_visible()
    expect(regressions).to_contain_text("grew most: think")
    assert_accessible(page)


def test_the_page_offers_run_and_pause_only_to_whom_the_permissions_allow(
    page: Page, dashboard_url: str
) -> None:
    open_route(page, dashboard_url, "/workflows/ui-guarded")
    expect(page.get_by_text("Its permissions do not let you start it by hand.")).to_be_visible()
    expect(page.get_by_text("Its permissions do not let you pause it.")).to_be_visible()
    expect(page.get_by_role("form", name="Run ui-guarded")).to_have_count(0)
    expect(page.get_by_role("button", name="Pause", exact=True)).to_have_count(0)
    expect(page.get_by_role("list", name="Triggers")).to_contain_text(
        "secret ui-guarded-hook, timestamped signatures only"
    )
    assert_accessible(page)

    open_route(page, dashboard_url, "/workflows/ui-guarded", user="ops@example.com")
    expect(page.get_by_role("form", name="Run ui-guarded")).to_be_visible()
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()
