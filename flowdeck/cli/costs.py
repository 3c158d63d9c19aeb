"""`flowdeck costs RUN` and `flowdeck costs --workflow WF [--last N]`: breakdowns and trends."""

from __future__ import annotations

import json
from typing import Annotated, Any
from urllib.parse import quote

import typer
from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError
from flowdeck.cli.render import run_duration


def _table(title: str, *columns: str) -> Table:
    table = Table(title=title, title_justify="left", box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(
            column, justify="right" if column not in {"Model", "Resource class", "Step"} else "left"
        )
    return table


def run_costs_view(costs: dict[str, Any]) -> RenderableType:
    """A run's breakdown: total, by model, by compute, per step."""
    header = Text.assemble(
        ("Run ID: ", "dim"),
        str(costs["run_id"]),
        ("   Total: ", "dim"),
        (f"${costs['total_usd']}", "bold"),
        ("   Calculator: ", "dim"),
        str(costs["calculator"]),
    )
    models = _table("By model", "Model", "Input tokens", "Output tokens", "Cost (USD)")
    for row in costs["by_model"]:
        models.add_row(
            escape(row["model"]), f"{row['input_tokens']:,}", f"{row['output_tokens']:,}", row["cost_usd"]
        )
    compute = _table("By compute", "Resource class", "Seconds", "Cost (USD)")
    for row in costs["by_compute"]:
        compute.add_row(row["resource_class"], f"{row['seconds']:.1f}", row["cost_usd"])
    steps = _table("By step", "Step", "Compute s", "Tokens", "Cost (USD)")
    for row in costs["steps"]:
        tokens = sum(m["input_tokens"] + m["output_tokens"] for m in row["models"])
        steps.add_row(escape(row["step"]), f"{row['compute_seconds']:.1f}", f"{tokens:,}", row["cost_usd"])
    return Group(header, Text(""), models, Text(""), compute, Text(""), steps)


def trend_view(trend: dict[str, Any]) -> RenderableType:
    """A workflow's runs, oldest first, regressions marked with the step that grew most."""
    table = _table(
        f"Cost trend of {escape(trend['workflow'])}", "Run ID", "Started", "Duration", "Cost (USD)", ""
    )
    table.columns[0].justify = "left"
    for row in trend["runs"]:
        mark = (
            Text(f"▲ regression ({row['grew_most'] or 'no single step'})", style="bold red")
            if row["regression"]
            else Text("")
        )
        table.add_row(
            row["run_id"],
            str(row.get("started_at") or "-"),
            run_duration(row.get("duration_s")),
            row["cost_usd"],
            mark,
        )
    parts: list[RenderableType] = [table]
    if base := trend.get("baseline"):
        parts.append(
            Text(
                f"baseline: median ${base['median_usd']}, MAD ${base['mad_usd']}, "
                f"threshold ${base['threshold_usd']} (median + max(3·MAD, 5%))",
                style="dim",
            )
        )
    return Group(*parts)


def costs(
    ctx: typer.Context,
    run_id: Annotated[str | None, typer.Argument(metavar="RUN", help="Run ID.")] = None,
    workflow: Annotated[str | None, typer.Option(help="A workflow's cost trend instead.")] = None,
    last: Annotated[int, typer.Option(min=1, max=100, help="Runs in the trend.")] = 30,
    json_output: Annotated[bool, typer.Option("--json", help="Print the API's JSON answer.")] = False,
) -> None:
    """A run's costs by model, compute and step; or with --workflow, the trend with regressions."""
    if (run_id is None) == (workflow is None):
        raise typer.BadParameter("give a RUN or --workflow WF (one of them)")
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    try:
        with ApiClient(api) as client:
            if run_id is not None:
                answer = client.request("GET", f"/runs/{quote(run_id, safe='')}/costs")
            else:
                answer = client.request(
                    "GET", f"/workflows/{quote(workflow or '', safe='')}/costs", params={"last": last}
                )
    except ApiError as exc:
        Console(stderr=True).print(f"[red]error:[/red] {escape(str(exc))}")
        raise typer.Exit(1) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2))
    else:
        Console().print(run_costs_view(answer) if run_id is not None else trend_view(answer))


def register(app: typer.Typer) -> None:
    app.command()(costs)
