"""`flowdeck open [RUN]`: the dashboard (or one run's execution view) in a browser."""

from __future__ import annotations

import webbrowser
from typing import Annotated
from urllib.parse import quote

import typer

from flowdeck.cli.client import DEFAULT_API

DASHBOARD_ENV = "FLOWDECK_DASHBOARD"


def dashboard_link(base: str, run_id: str | None = None) -> str:
    """The page's URL: `#/runs` (history) or `#/runs/{id}` (SPEC §6 routes)."""
    route = f"/runs/{quote(run_id, safe='')}" if run_id else "/runs"
    return f"{base.rstrip('/')}/#{route}"


def open_dashboard(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(metavar="[RUN]", help="Run ID to open.")] = None,
    dashboard: Annotated[
        str | None,
        typer.Option(
            "--dashboard",
            envvar=DASHBOARD_ENV,
            help="Dashboard URL (default: the API's, where the local stack serves the page).",
        ),
    ] = None,
    no_browser: Annotated[bool, typer.Option("--no-browser", help="Only print the link.")] = False,
) -> None:
    """Open the dashboard in a browser (a run's execution view with RUN)."""
    base = dashboard or str(getattr(ctx.obj, "api", None) or DEFAULT_API)
    link = dashboard_link(base, run_id)
    typer.echo(link)
    # No browser on this machine (a server, CI): the printed link is the answer.
    if not no_browser and not webbrowser.open(link):
        typer.echo("No browser found here: open the link above.", err=True)


def register(app: typer.Typer) -> None:
    app.command("open")(open_dashboard)
