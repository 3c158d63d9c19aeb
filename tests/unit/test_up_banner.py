"""`flowdeck up` (and so `make run`) prints where the dashboard is."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from flowdeck.cli.up import _banner
from flowdeck.local.stack import LocalStack

REPO = Path(__file__).resolve().parents[2]


def test_the_banner_links_the_dashboard(tmp_path: Path) -> None:
    stack = LocalStack(REPO / "workflows", port=8799, data_dir=tmp_path)
    console = Console(record=True, width=120)
    console.print(_banner(stack))
    text = console.export_text()
    assert "Dashboard  http://127.0.0.1:8799/" in text
    assert "API        http://127.0.0.1:8799" in text
