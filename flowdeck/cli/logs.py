"""`flowdeck logs RUN [--step S] [--output|--errors] [--grep TEXT] [--follow] [--json]`: a run's output."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape
from rich.text import Text

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError
from flowdeck.status import FINISHED_RUN_STATUSES

FOLLOW_EVERY_SECONDS = 0.5


def pages(
    client: ApiClient,
    run_id: str,
    *,
    step: str | None = None,
    stream: str = "all",
    grep: str | None = None,
    follow: bool = False,
    every: float = FOLLOW_EVERY_SECONDS,
) -> Iterator[dict[str, Any]]:
    """Pages of GET /runs/{id}/logs: all that is stored, then (follow) new lines until the run finishes."""
    # A finished run's log is complete: workers store a step's lines before recording its end.
    params: dict[str, Any] = {"step": step, "stream": stream, "q": grep, "since_seq": 0}
    path = f"/runs/{quote(run_id, safe='')}/logs"
    while True:
        page = client.request("GET", path, params=params)
        yield page
        params["since_seq"] = page["next_since_seq"]
        if page["more"]:
            continue
        if not follow or page.get("run_status") in FINISHED_RUN_STATUSES:
            return
        time.sleep(every)


def print_lines(lines: list[dict[str, Any]], console: Console) -> None:
    """`[step] text` per line, stderr in red; the continuation parts of a long line rejoin it."""
    if not lines:
        return
    out = Text()
    for line in lines:
        if line.get("cont"):
            out.append(line["text"], style="red" if line["stream"] == "stderr" else None)
            continue
        if out:
            out.append("\n")
        out.append(f"[{line['step']}] ", style="dim")
        out.append(line["text"], style="red" if line["stream"] == "stderr" else None)
    console.print(out, highlight=False, soft_wrap=True)


def logs(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    step: Annotated[str | None, typer.Option("--step", help="Only this step's output.")] = None,
    output: Annotated[bool, typer.Option("--output", help="Only stdout (the Output view).")] = False,
    errors: Annotated[bool, typer.Option("--errors", help="Only stderr (the Errors view).")] = False,
    grep: Annotated[str | None, typer.Option("--grep", help="Only lines containing TEXT (any case).")] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing until the run ends.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """Print a run's output: every stored line, filtered by step, stream and text."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    console = Console()
    if output and errors:
        Console(stderr=True).print("[red]error:[/red] --output and --errors exclude each other; give one")
        raise typer.Exit(2)
    stream = "stderr" if errors else "stdout" if output else "all"
    if follow and _follow_live(api, run_id, step, stream, grep, as_json, console):
        return
    try:
        with ApiClient(api) as client:
            for page in pages(client, run_id, step=step, stream=stream, grep=grep, follow=follow):
                if as_json:
                    for line in page["lines"]:
                        typer.echo(json.dumps(line, ensure_ascii=False))
                else:
                    print_lines(page["lines"], console)
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None


def _follow_live(
    api: str, run_id: str, step: str | None, stream: str, grep: str | None, as_json: bool, console: Console
) -> bool:
    """--follow on the WebSocket (replay, then live); False when it is unreachable (then poll)."""
    from flowdeck.cli.live import LiveFeed, LiveUnavailable, follow_lines, ws_url

    needle = grep.casefold() if grep else None

    def keep(line: dict[str, Any]) -> bool:
        return (
            (step is None or line["step"] == step)
            and (stream == "all" or line["stream"] == stream)
            and (needle is None or needle in line["text"].casefold())
        )

    def show(lines: list[dict[str, Any]]) -> None:
        if as_json:
            for line in lines:
                typer.echo(json.dumps(line, ensure_ascii=False))
        else:
            print_lines(lines, console)

    try:
        follow_lines(LiveFeed(ws_url(api), run_id), show, keep)
    except LiveUnavailable:
        return False
    return True


def register(app: typer.Typer) -> None:
    """Add the `logs` command to `app`."""
    app.command("logs")(logs)
