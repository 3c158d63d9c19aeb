"""`flowdeck up`: the embedded local stack in the foreground, with an optional demo run."""

from __future__ import annotations

import signal
import threading
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.panel import Panel

from flowdeck.cli.client import ApiClient, ApiError
from flowdeck.cli.render import follow_run
from flowdeck.constants import DEMO_WORKFLOW
from flowdeck.errors import InvalidDefinition
from flowdeck.local.stack import LocalStack


def _banner(stack: LocalStack) -> Panel:
    names = ", ".join(stack.catalog.names()) or "(none)"
    body = (
        f"Dashboard  {stack.dashboard_url}\n"
        f"API        {stack.api_url}\n"
        f"Workflows  {names}\n"
        f"Local AWS  {stack.endpoint_url} (moto)\n"
        f"Workers    {stack.worker_count} processes, {stack.worker_concurrency} steps each\n"
        f"Data       {stack.data_dir} (kept across restarts; --fresh starts empty)"
    )
    return Panel(body, title="Flowdeck local stack", expand=False)


def up(
    workflows: Annotated[Path, typer.Option("--workflows", help="Folder of workflow definitions.")] = Path(
        "workflows"
    ),
    port: Annotated[int, typer.Option("--port", help="Port of the local API.")] = 8765,
    demo: Annotated[
        bool, typer.Option("--demo", help=f"Run the {DEMO_WORKFLOW} workflow and follow it.")
    ] = False,
    exit_after: Annotated[
        bool, typer.Option("--exit", help="Stop after the demo; exit non-zero if it did not succeed.")
    ] = False,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Worker processes.")] = 2,
    fresh: Annotated[
        bool, typer.Option("--fresh", help="Start empty: forget the history, logs and artifacts kept.")
    ] = False,
) -> None:
    """Start the embedded local stack on the definitions in --workflows; serve until Ctrl-C."""
    console, errors = Console(), Console(stderr=True)
    if not workflows.is_dir():
        errors.print(
            f"[red]error:[/red] --workflows {workflows}: no such folder", highlight=False, soft_wrap=True
        )
        raise typer.Exit(2)
    try:
        stack = LocalStack(workflows, port=port, workers=workers, fresh=fresh)
    except InvalidDefinition as exc:
        for problem in exc.problems:
            errors.print(f"[red]error:[/red] {problem}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    if demo and DEMO_WORKFLOW not in stack.catalog.definitions:
        errors.print(f"[red]error:[/red] --demo runs {DEMO_WORKFLOW!r}, which {workflows} does not define")
        raise typer.Exit(2)
    code = 0
    # `kill` or a supervisor's stop: shut down as on Ctrl-C, stopping the emulator and workers.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with console.status("Starting the local stack…"):
            stack.start()
        console.print(_banner(stack))
        restored = stack.restored
        if restored.items:
            console.print(
                f"Restored {restored.runs} runs, {restored.objects} artifacts and "
                f"{restored.secrets} secrets from {stack.state.folder}",
                highlight=False,
                soft_wrap=True,
            )
        for run_id in stack.interrupted:
            console.print(
                f"Run {run_id} was in flight when the stack stopped: recorded failed "
                f"— flowdeck retry {run_id}",
                highlight=False,
                soft_wrap=True,
            )
        if demo:
            with ApiClient(stack.api_url, user="demo") as client:
                run_id = client.start_run(DEMO_WORKFLOW, {})
                # The demo's approval step waits for two people: approve it as them, visibly, so it ends.
                demo_approvals(stack.api_url, run_id, console)
                code = 0 if follow_run(client, run_id, console).get("status") == "succeeded" else 1
        if not exit_after:
            console.print(f"Serving on {stack.api_url} — press Ctrl-C to stop.")
            threading.Event().wait()
    except KeyboardInterrupt:
        console.print("Stopping…")
    except (RuntimeError, OSError, ApiError) as exc:
        errors.print(f"[red]error:[/red] {exc}", highlight=False)
        code = 1
    finally:
        stack.stop()
    raise typer.Exit(code)


def demo_approvals(api_url: str, run_id: str, console: Console) -> threading.Thread:
    """In the background: when the demo run waits for approval, show it and approve as its approvers."""
    from flowdeck.cli.demo_approvals import approve_when_waiting

    thread = threading.Thread(target=approve_when_waiting, args=(api_url, run_id, console), daemon=True)
    thread.start()
    return thread


def register(app: typer.Typer) -> None:
    """Add the `up` command to `app`."""
    app.command("up")(up)
