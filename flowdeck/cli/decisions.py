"""`flowdeck skip RUN STEP [--comment C] [--json]`: skip a step paused on its failure (`allow_skip`)."""

from __future__ import annotations

import json
from typing import Annotated
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError


def skip(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    step: Annotated[str, typer.Argument(metavar="STEP", help="The paused step (its `allow_skip` is true).")],
    comment: Annotated[str | None, typer.Option("--comment", help="Why; kept with the decision.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Skip STEP of RUN, paused after its failure: it is recorded skipped and the run goes on."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    path = f"/runs/{quote(run_id, safe='')}/steps/{quote(step, safe='')}/skip"
    try:
        with ApiClient(api) as client:
            answer = client.request("POST", path, body={"comment": comment} if comment else None)
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        Console().print(
            f"Skipped step [bold]{escape(step)}[/bold] of run {escape(run_id)}; the run goes on: "
            f"flowdeck show {escape(run_id)}"
        )


def register(app: typer.Typer) -> None:
    app.command()(skip)
