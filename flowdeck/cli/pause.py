"""`flowdeck pause|resume WF [--reason R] [--json]`: stop a workflow from starting runs, and start again."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError

WorkflowArgument = Annotated[str, typer.Argument(metavar="WF", help="Workflow name.")]
ReasonOption = Annotated[str | None, typer.Option("--reason", help="Why; shown with the workflow.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def describe(answer: dict[str, Any]) -> str:
    """One line: what the workflow's state is now, who set it, and whether this call changed it."""
    name = escape(str(answer.get("workflow")))
    if answer.get("active"):
        line = f"Workflow [bold]{name}[/bold] is active"
        if answer.get("resumed_by"):
            line += f" (resumed by {escape(str(answer['resumed_by']))} at {answer.get('resumed_at')})"
    else:
        line = (
            f"Workflow [bold]{name}[/bold] is paused by {escape(str(answer.get('paused_by')))} "
            f"at {answer.get('paused_at')}"
        )
        if answer.get("pause_reason"):
            line += f": {escape(str(answer['pause_reason']))}"
    if not answer.get("changed"):
        line += " [dim](unchanged)[/dim]"
    disabled = [t["name"] for t in answer.get("triggers", [])]
    if disabled:
        state = "enabled" if answer.get("active") else "disabled"
        line += f"\n  schedules and rules {state}: {', '.join(escape(n) for n in disabled)}"
    return line


def set_state(ctx: typer.Context, workflow: str, active: bool, reason: str | None, json_output: bool) -> None:
    """PUT /workflows/{wf}/state and print the answer."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    body: dict[str, Any] = {"active": active}
    if reason:
        body["reason"] = reason
    try:
        with ApiClient(api) as client:
            answer = client.request("PUT", f"/workflows/{quote(workflow, safe='')}/state", body=body)
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
    else:
        Console(soft_wrap=True).print(describe(answer))


def pause(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    reason: ReasonOption = None,
    json_output: JsonOption = False,
) -> None:
    """Pause WF: no trigger starts a run of it until `flowdeck resume`; runs under way go on."""
    set_state(ctx, workflow, False, reason, json_output)


def resume(
    ctx: typer.Context,
    workflow: WorkflowArgument,
    reason: ReasonOption = None,
    json_output: JsonOption = False,
) -> None:
    """Resume WF: its triggers start runs again, and runs it queued start in order."""
    set_state(ctx, workflow, True, reason, json_output)


def register(app: typer.Typer) -> None:
    app.command()(pause)
    app.command()(resume)
