"""The log panel in a real browser: stored and live lines, filters, search, follow/pause, links, download."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, Route, expect

from tests.browser.conftest import assert_accessible, open_route, start_run, wait_for_run, wait_for_step

ROWS = ".log-scroll .log-row"
# The highest line number in the DOM (the rows end with a spacer, so no :last-child).
LAST_LINE_JS = "Math.max(0, ...[...document.querySelectorAll('.log-row')].map((r) => Number(r.dataset.line)))"
SCROLL_TOP_JS = "() => document.querySelector('.log-scroll').scrollTop"


@pytest.fixture(scope="module")
def story(api: httpx.Client) -> dict[str, Any]:
    """A run-story run whose build step has printed all of its lines (it waits for approval after)."""
    run_id = start_run(api, "run-story")
    return wait_for_step(api, run_id, "approval", "waiting")


def build_lines(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    lines = api.get(f"/runs/{run_id}/logs", params={"step": "build"}).json()["lines"]
    return [line for line in lines if not line.get("cont")]


COLOURED = "\x1b[32mcompiled ok\x1b[0m and \x1b[1;31mbold red\x1b[0m"
MARKUP = "<img src=x onerror=alert(1)>"
PROGRESS = "progress 10%\rprogress 50%\rprogress 100%"
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


def row(page: Page, line: int):
    return page.locator(f"{ROWS}[data-line='{line}']")


def warnings_first(route: Route) -> None:
    """The unfiltered log page as the runner may store it: the stderr pipe read first (one batch)."""
    answer = route.fetch().json()
    lines = answer["lines"]
    if lines:
        first = min(line["seq"] for line in lines)
        ordered = sorted(lines, key=lambda line: line["stream"] != "stderr")
        answer["lines"] = [line | {"seq": first} for line in ordered]
    route.fulfill(json=answer)


@pytest.mark.parametrize("stored", ["as stored", "warnings first"])
def test_ansi_colours_markup_as_text_and_progress_collapsed(
    page: Page, dashboard_url: str, api: httpx.Client, story, stored: str
) -> None:
    """Lines are numbered in the step's stored log, whose order across stdout and stderr is the order
    the runner read the two pipes in (under load the warnings may come first): the numbers come from
    the log the page reads, never from the order the program printed in."""
    run_id = story["run_id"]
    lines = build_lines(api, run_id)
    if stored == "warnings first":
        page.route(re.compile(rf"/runs/{run_id}/logs\?since_seq=\d+&limit=\d+$"), warnings_first)
        lines = sorted(lines, key=lambda line: line["stream"] != "stderr")
    texts = [line["text"] for line in lines]
    number = {text: texts.index(text) + 1 for text in (COLOURED, MARKUP, PROGRESS)}
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    open_route(page, dashboard_url, f"/runs/{run_id}?step=build&line={number[COLOURED]}")
    coloured = row(page, number[COLOURED])
    expect(coloured).to_have_attribute("aria-current", "true")
    expect(coloured.locator(".ansi-green-fg")).to_have_text("compiled ok")
    expect(coloured.locator(".ansi-red-fg")).to_have_text("bold red")
    expect(coloured.locator(".log-text")).to_have_text("compiled ok and bold red")  # no escape codes left
    markup = row(page, number[MARKUP])
    expect(markup.locator(".log-text")).to_have_text("<img src=x onerror=alert(1)>")
    expect(page.locator(".log-scroll img")).to_have_count(0)
    expect(row(page, number[PROGRESS]).locator(".log-text")).to_have_text("progress 100%")
    # Line 1 is the stored log's first line, whichever stream it came from.
    expect(row(page, 1).locator(".log-text")).to_have_text(ANSI_CODE.sub("", texts[0]).rsplit("\r", 1)[-1])
    assert dialogs == []


def test_errors_filter_keeps_stderr_lines_only(page: Page, dashboard_url: str, story) -> None:
    open_route(page, dashboard_url, f"/runs/{story['run_id']}")
    page.get_by_label("Step", exact=True).select_option("build")
    expect(page.locator(".log-status")).to_contain_text("207 lines")
    page.get_by_role("button", name="Errors", exact=True).click()
    expect(page.locator(ROWS)).to_have_count(4)
    expect(page.locator(ROWS).first.locator(".log-text")).to_have_text("warning 50: disk almost full")
    page.get_by_role("button", name="Output", exact=True).click()
    expect(page.locator(".log-status")).to_contain_text("203 lines")
    page.get_by_role("button", name="All", exact=True).click()
    expect(page.locator(".log-status")).to_contain_text("207 lines")
    page.get_by_label("Timestamps").check()
    expect(page.locator(f"{ROWS} .log-ts").first).to_have_text(re.compile(r"^\d\d:\d\d:\d\d\.\d{3}$"))


def test_search_counts_every_match_and_steps_through_them(page: Page, dashboard_url: str, story) -> None:
    open_route(page, dashboard_url, f"/runs/{story['run_id']}")
    search = page.get_by_role("searchbox", name="Search")
    # "build line 1", "build line 10".."19", "build line 100".."199": 111, whatever the case.
    search.fill("BUILD LINE 1")
    search.press("Enter")
    expect(page.locator(".search-count")).to_have_text("111 matches")
    page.get_by_role("button", name="Next match").click()
    current = page.locator(f"{ROWS}[aria-current='true'] .log-text")
    expect(current).to_have_text("build line 1")
    page.get_by_role("button", name="Next match").click()
    expect(current).to_have_text("build line 10")
    page.get_by_role("button", name="Previous match").click()
    page.get_by_role("button", name="Previous match").click()
    expect(current).to_have_text("build line 199")  # wraps round to the last match
    search.fill("no such text anywhere")
    search.press("Enter")
    expect(page.locator(".search-count")).to_have_text("0 matches")
    # The search follows the filter: the four warnings are on stderr only.
    search.fill("warning")
    search.press("Enter")
    expect(page.locator(".search-count")).to_have_text("4 matches")
    page.get_by_role("button", name="Output", exact=True).click()
    expect(page.locator(".search-count")).to_have_text("0 matches")
    page.get_by_role("button", name="Errors", exact=True).click()
    expect(page.locator(".search-count")).to_have_text("4 matches")


def test_a_deep_link_opens_the_step_at_its_line(
    page: Page, dashboard_url: str, api: httpx.Client, story
) -> None:
    run_id = story["run_id"]
    expected = build_lines(api, run_id)[119]["text"]
    open_route(page, dashboard_url, f"/runs/{run_id}?step=build&line=120")
    target = row(page, 120)
    expect(target).to_have_attribute("aria-current", "true")
    expect(target.locator(".log-text")).to_have_text(expected)
    expect(target).to_be_in_viewport()
    expect(page.get_by_label("Step", exact=True)).to_have_value("build")
    # Each line number is itself the link to that line.
    expect(target.get_by_role("link")).to_have_attribute("href", f"#/runs/{run_id}?step=build&line=120")
    assert target.get_attribute("data-seq") == str(build_lines(api, run_id)[119]["seq"])


def test_download_saves_the_whole_log_as_text(
    page: Page, dashboard_url: str, api: httpx.Client, story
) -> None:
    open_route(page, dashboard_url, f"/runs/{story['run_id']}")
    page.get_by_label("Step", exact=True).select_option("build")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download").click()
    # Bytes, not read_text(): universal newlines would split the stored "\r" progress line.
    saved = Path(download.value.path()).read_bytes().decode().split("\n")[:-1]
    assert saved == [f"[build] {line['text']}" for line in build_lines(api, story["run_id"])]


def test_live_lines_follow_pause_and_cancel(page: Page, dashboard_url: str, api: httpx.Client) -> None:
    run_id = start_run(api, "run-live", lines=2000, interval=0.02)
    wait_for_step(api, run_id, "stream", "running")
    open_route(page, dashboard_url, f"/runs/{run_id}")
    node = page.locator(".dag [data-step='stream']")
    expect(node).to_have_attribute("data-status", "running")
    expect(node).to_have_attribute("aria-current", "step")
    assert_accessible(page)

    def last_line() -> int:
        return int(page.evaluate(f"() => {LAST_LINE_JS}"))

    page.get_by_label("Step", exact=True).select_option("stream")
    expect(page.locator(".log-status")).to_contain_text("live")
    first = last_line()
    page.wait_for_function(f"() => {LAST_LINE_JS} > {first + 20}")
    # Only a window of rows is in the DOM, however many lines arrived.
    assert page.locator(ROWS).count() < 120

    # Pause: the view stays put while lines keep arriving.
    page.get_by_role("button", name="Pause", exact=True).click()
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    held, total = (
        page.evaluate(SCROLL_TOP_JS),
        int(page.locator(".log-status").get_attribute("data-lines") or 0),
    )
    page.wait_for_function(
        f"() => Number(document.querySelector('.log-status').dataset.lines) > {total + 40}"
    )
    assert page.evaluate(SCROLL_TOP_JS) == held
    seen = last_line()
    page.get_by_role("button", name="Resume", exact=True).click()
    page.wait_for_function(f"() => {LAST_LINE_JS} > {seen + 40}")

    # Scrolling up pauses by itself; "Jump to latest" follows again.
    page.locator(".log-scroll").hover()
    page.mouse.wheel(0, -600)
    expect(page.get_by_role("button", name="Resume", exact=True)).to_be_visible()
    page.get_by_role("button", name="Jump to latest").click()
    expect(page.get_by_role("button", name="Pause", exact=True)).to_be_visible()

    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"/runs/{run_id}/cancel")
    ) as sent:
        page.locator(".run-header").get_by_role("button", name="Cancel", exact=True).click()
    assert sent.value.post_data_json == {"mode": "graceful"}
    expect(page.locator("[data-run-status]")).to_have_attribute("data-run-status", "cancelled")
    expect(page.locator(".run-header").get_by_role("button", name="Cancel", exact=True)).to_have_count(0)
    assert wait_for_run(api, run_id)["status"] == "cancelled"


def test_a_live_frame_lost_on_the_way_is_read_back_from_the_store(
    page: Page, dashboard_url: str, api: httpx.Client
) -> None:
    """At least once, in order: a batch the socket never delivered still shows, before the ones after it."""
    dropped: list[int] = []

    def relay(ws: Any) -> None:
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("type") == "log" and frame.get("step") == "stream" and not dropped:
                dropped.append(frame["seq"])
                return
            ws.send(message)

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws"), relay)
    run_id = start_run(api, "run-live", lines=60, interval=0.05)
    wait_for_step(api, run_id, "prepare", "succeeded")
    open_route(page, dashboard_url, f"/runs/{run_id}")
    page.get_by_label("Step", exact=True).select_option("stream")
    wait_for_run(api, run_id)
    expect(page.locator(".log-status")).to_have_attribute("data-lines", "60")
    assert dropped, "no live frame went through the socket"
    page.get_by_role("searchbox", name="Search").fill("tick")
    page.get_by_role("searchbox", name="Search").press("Enter")
    expect(page.locator(".search-count")).to_have_text("60 matches")
    texts = page.evaluate(
        "() => [...document.querySelectorAll('.log-row .log-text')].map((e) => e.textContent)"
    )
    numbers = [int(text.split()[1]) for text in texts]
    assert numbers == sorted(numbers) and numbers[-1] == 60
