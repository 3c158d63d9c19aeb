"""`flowdeck cancel RUN [--force|--cleanup] [--reason R] [--json]`: stop a run."""

from __future__ import annotations

import json
import time
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError
from flowdeck.cli.render import cleanup_lines

CLEANUP_DONE = {"succeeded", "failed"}
POLL_SECONDS = 1.0


def wait_for_cleanup(client: ApiClient, run_id: str) -> dict[str, Any]:
    """The run once its cleanup has finished (succeeded or failed)."""
    while True:
        run = client.get_run(run_id)
        if run.get("cleanup_status") in CLEANUP_DONE:
            return run
        time.sleep(POLL_SECONDS)


def cancel(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    force: Annotated[bool, typer.Option("--force", help="Kill the steps at once (no grace period).")] = False,
    cleanup: Annotated[
        bool,
        typer.Option("--cleanup", help="Then run the succeeded steps' `cleanup` commands, newest first."),
    ] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Why; kept on the run.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="With --cleanup: wait for the cleanups and show them.")
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Cancel RUN: graceful (SIGTERM, grace period, SIGKILL) unless --force; exit 1 if a cleanup failed."""
    if force and cleanup:
        raise typer.BadParameter("choose one of --force and --cleanup")
    mode = "force" if force else "cleanup" if cleanup else "graceful"
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    console = Console()
    body: dict[str, Any] = {"mode": mode}
    if reason:
        body["reason"] = reason
    try:
        with ApiClient(api) as client:
            answer = client.request("POST", f"/runs/{quote(run_id, safe='')}/cancel", body=body)
            if not as_json:
                why = escape(str(answer.get("reason")))
                # Cancelled only once nothing of the run runs; until then its processes are ending.
                done = "Cancelled" if answer.get("status") == "cancelled" else "Cancelling"
                if answer.get("escalated"):
                    done = "Forcing the cancel of"
                console.print(f"{done} run [bold]{escape(run_id)}[/bold] ({answer.get('mode', mode)}): {why}")
            if mode != "cleanup" or not wait:
                if as_json:
                    typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
                return
            if not as_json:
                console.print("[dim]running the cleanups…[/dim]")
            try:
                run = wait_for_cleanup(client, run_id)
            except KeyboardInterrupt:
                Console(stderr=True).print(f"stopped waiting; the cleanup goes on: flowdeck show {run_id}")
                raise typer.Exit(130) from None
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    if as_json:
        outcome = answer | {"cleanup_status": run.get("cleanup_status"), "cleanup": run.get("cleanup", [])}
        typer.echo(json.dumps(outcome, indent=2, ensure_ascii=False))
    else:
        for line in cleanup_lines(run)[1:]:
            console.print(escape(line), style="red" if "failed" in line else None, soft_wrap=True)
    if run.get("cleanup_status") != "succeeded":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    app.command(name="cancel")(cancel)
