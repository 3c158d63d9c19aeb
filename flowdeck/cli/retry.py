"""`flowdeck retry RUN [--from-step S] [-i k=v] [--step S] [--follow] [--json]`: run a finished run again."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError
from flowdeck.cli.inputs import parse_inputs
from flowdeck.cli.render import follow_run, wait_for_run
from flowdeck.status import RunStatus


def retry(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID of a finished run.")],
    from_step: Annotated[
        str | None,
        typer.Option(
            "--from-step", help="Start at this step (default: the failed step); earlier ones are reused."
        ),
    ] = None,
    input_pairs: Annotated[
        list[str] | None,
        typer.Option("--input", "-i", metavar="KEY=VALUE", help="Change an input; repeatable."),
    ] = None,
    step: Annotated[
        str | None,
        typer.Option("--step", help="Retry this step of a run paused on its failure (same run, no new one)."),
    ] = None,
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Watch the new run until it finishes.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Retry RUN as a new run linked to it; with --follow, exit non-zero unless it succeeds."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    console = Console()
    try:
        with ApiClient(api) as client:
            if step is not None:
                if from_step is not None or input_pairs:
                    raise typer.BadParameter("--step retries a paused step as it is: no --from-step or -i")
                path = f"/runs/{quote(run_id, safe='')}/steps/{quote(step, safe='')}/retry"
                answer = client.request("POST", path, body={})
                if as_json:
                    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
                else:
                    console.print(f"Retrying step [bold]{escape(step)}[/bold] of run {escape(run_id)}")
                return
            body: dict[str, Any] = {}
            if from_step is not None:
                body["from_step"] = from_step
            if input_pairs:
                old = client.get_run(run_id)
                declared = client.get_workflow(str(old.get("workflow"))).get("inputs", {})
                body["inputs"] = parse_inputs(input_pairs, declared)
            started = client.request("POST", f"/runs/{quote(run_id, safe='')}/retry", body=body)
            new_id = str(started["run_id"])
            if not follow:
                if as_json:
                    typer.echo(json.dumps(started, indent=2, ensure_ascii=False))
                else:
                    reused = ", ".join(started.get("reused") or []) or "nothing"
                    console.print(
                        f"Started run [bold]{new_id}[/bold], a retry of {escape(run_id)} from "
                        f"{escape(', '.join(started.get('from_step') or []))} (reused: {escape(reused)})"
                        f" — watch it: flowdeck show {new_id}"
                    )
                return
            try:
                final = wait_for_run(client, new_id) if as_json else follow_run(client, new_id, console)
            except KeyboardInterrupt:
                Console(stderr=True).print(f"stopped following; the run goes on: flowdeck show {new_id}")
                raise typer.Exit(130) from None
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(final, indent=2, ensure_ascii=False))
    if final.get("status") != RunStatus.SUCCEEDED:
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add the `retry` command to `app`."""
    app.command("retry")(retry)
