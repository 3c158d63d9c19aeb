"""`flowdeck open [RUN]`: the dashboard's link, printed and handed to the browser."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from flowdeck.cli import open_page
from flowdeck.cli.main import app


@pytest.fixture
def opened(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    links: list[str] = []
    monkeypatch.setattr(open_page.webbrowser, "open", lambda url: links.append(url) or True)
    monkeypatch.delenv(open_page.DASHBOARD_ENV, raising=False)
    return links


def test_open_without_a_run_shows_the_history_of_the_local_stack(opened: list[str]) -> None:
    result = CliRunner().invoke(app, ["open"])
    assert result.exit_code == 0, result.output
    assert opened == ["http://127.0.0.1:8765/#/runs"]
    assert result.output.strip() == "http://127.0.0.1:8765/#/runs"


def test_open_a_run_on_another_api(opened: list[str]) -> None:
    result = CliRunner().invoke(app, ["--api", "http://127.0.0.1:9000/", "open", "20260101-000000-ab/c"])
    assert result.exit_code == 0, result.output
    assert opened == ["http://127.0.0.1:9000/#/runs/20260101-000000-ab%2Fc"]


def test_the_dashboard_url_can_differ_from_the_api(opened: list[str]) -> None:
    result = CliRunner().invoke(app, ["open", "r-1", "--dashboard", "https://flowdeck.example.com"])
    assert result.exit_code == 0, result.output
    assert opened == ["https://flowdeck.example.com/#/runs/r-1"]


def test_no_browser_only_prints(opened: list[str]) -> None:
    result = CliRunner().invoke(app, ["open", "--no-browser"])
    assert result.exit_code == 0
    assert opened == []
    assert "#/runs" in result.output


def test_without_a_browser_the_link_is_still_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(open_page.webbrowser, "open", lambda url: False)
    result = CliRunner().invoke(app, ["open"])
    assert result.exit_code == 0
    assert "http://127.0.0.1:8765/#/runs" in result.output
    assert "No browser found" in result.output
