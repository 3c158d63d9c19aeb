"""`flowdeck triggers WF` (triggers and recent deliveries) and `flowdeck secrets set-webhook NAME`."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError
from flowdeck.cli.render import _local_time
from flowdeck.cli.slack_secret import secrets_client, set_slack
from flowdeck.triggers.secrets import WebhookSecrets, secret_id

OUTCOME_STYLES = {"started": "green", "duplicate": "cyan", "refused": "red", "ignored": "yellow"}


def _trigger_line(trigger: dict[str, Any]) -> str:
    """One trigger as `kind  details` (JSON of its settings; the endpoint apart)."""
    view = dict(trigger)
    endpoint = view.pop("endpoint", None)
    kind, settings = next(iter(view.items()), ("manual", {}))
    details = json.dumps(settings, separators=(", ", ": ")) if settings else ""
    return f"{kind:<9} {details}" + (f"   POST {endpoint}" if endpoint else "")


def triggers_view(answer: dict[str, Any]) -> RenderableType:
    """The triggers, then the deliveries newest first (time, trigger, delivery, outcome, run, reason)."""
    lines = [Text(f"Triggers of {answer['workflow']}", style="bold")]
    lines += [Text("  " + _trigger_line(t)) for t in answer["triggers"]] or [
        Text("  manual only", style="dim")
    ]
    for when in answer.get("next_fire_times") or []:
        lines.append(Text(f"  next fire: {when}", style="dim"))
    table = Table(
        title="Recent deliveries", title_justify="left", box=None, header_style="bold", pad_edge=False
    )
    for column in ("Time", "Trigger", "Delivery", "Outcome", "Run", "Reason"):
        table.add_column(column, overflow="fold")
    for row in answer["deliveries"]:
        outcome = row.get("outcome", "")
        table.add_row(
            _local_time(row.get("received_at")),
            row.get("trigger", ""),
            escape(row.get("delivery_id", "")),
            Text(outcome, style=OUTCOME_STYLES.get(outcome, "")),
            row.get("run_id") or "-",
            escape(row.get("reason") or ""),
        )
    if not answer["deliveries"]:
        return Group(*lines, Text(""), Text("No deliveries yet.", style="dim"))
    return Group(*lines, Text(""), table)


def triggers(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(metavar="WF", help="Workflow name.")],
    limit: Annotated[int, typer.Option(min=1, max=200, help="Deliveries to show.")] = 50,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """A workflow's triggers and its recent deliveries: what each started, or why it was refused."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    try:
        with ApiClient(api) as client:
            answer = client.request(
                "GET", f"/workflows/{quote(workflow, safe='')}/triggers", params={"limit": limit}
            )
    except ApiError as exc:
        Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        Console().print(triggers_view(answer))


secrets_app = typer.Typer(
    help="Secrets in Secrets Manager: webhooks (flowdeck/webhooks/NAME), Slack (flowdeck/slack).",
    no_args_is_help=True,
)


@secrets_app.command("set-webhook")
def set_webhook(
    name: Annotated[
        str, typer.Argument(metavar="NAME", help="The secret a trigger names (github: GitHub's).")
    ],
    endpoint_url: Annotated[
        str | None,
        typer.Option(help="Secrets Manager endpoint: the local stack's `Local AWS` URL; omit on AWS."),
    ] = None,
) -> None:
    """Create or replace a webhook secret; the value is read from stdin (or prompted for, hidden)."""
    value = (
        sys.stdin.read().strip() if not sys.stdin.isatty() else typer.prompt("Secret value", hide_input=True)
    )
    if not value:
        raise typer.BadParameter("the secret value is empty", param_hint="stdin")
    client = secrets_client(endpoint_url)
    WebhookSecrets(client).put(name, value)
    Console(stderr=True).print(f"set {escape(secret_id(name))}")


# Slack's bot token and signing secret (flowdeck/slack), for Slack approvals.
secrets_app.command("set-slack")(set_slack)


def register(app: typer.Typer) -> None:
    app.command()(triggers)
    app.add_typer(secrets_app, name="secrets")
