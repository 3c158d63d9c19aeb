"""`flowdeck` commands: thin wrappers that parse options, call the API client and print."""

from __future__ import annotations

import functools
import json
import shlex
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, ParamSpec, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.cli import approvals as approval_commands
from flowdeck.cli import artifacts, costs, logs, open_page, triggers, up
from flowdeck.cli import cancel as cancel_command
from flowdeck.cli import decisions as decision_commands
from flowdeck.cli import pause as pause_commands
from flowdeck.cli import retry as retry_command
from flowdeck.cli.client import API_ENV, DEFAULT_API, ApiClient, ApiError
from flowdeck.cli.inputs import parse_inputs
from flowdeck.cli.render import follow_run, hidden_columns, run_view, runs_table, wait_for_run
from flowdeck.definition.durations import parse_duration
from flowdeck.status import RunStatus, Trigger

P = ParamSpec("P")
R = TypeVar("R")


def _flags_without_a_type() -> None:
    """`--follow` in --help, not `--follow <bool>`: a flag takes no value (typer 0.29 labels it anyway)."""
    from typer import _click
    from typer.core import TyperOption

    labelled = TyperOption.display_type_rich

    def display_type_rich(self: TyperOption, ctx: _click.Context) -> str | None:
        return None if self.is_bool_flag else labelled(self, ctx)

    TyperOption.display_type_rich = display_type_rich  # type: ignore[method-assign,assignment]


_flags_without_a_type()

app = typer.Typer(
    name="flowdeck",
    help="Run workflows and watch them: locally (`flowdeck up`) or on AWS.",
    no_args_is_help=True,
    add_completion=False,
    # A traceback is for bugs only; expected failures are ApiError and print one line.
    pretty_exceptions_enable=False,
)

ApiOption = Annotated[str, typer.Option("--api", envvar=API_ENV, help="Flowdeck API base URL.")]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@dataclass(frozen=True)
class Options:
    """Options given before the command (`flowdeck --api URL --json runs`)."""

    api: str = DEFAULT_API
    json: bool = False


def _options(ctx: typer.Context, json_output: bool) -> Options:
    given = ctx.obj if isinstance(ctx.obj, Options) else Options()
    return Options(api=given.api, json=given.json or json_output)


def _print_json(data: Any) -> None:
    typer.echo(json.dumps(data, indent=2, ensure_ascii=False))


def reports_api_errors(command: Callable[P, R]) -> Callable[P, R]:
    """ApiError -> `error: ...` on stderr and exit code 1, no traceback."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except ApiError as exc:
            Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
            raise typer.Exit(1) from None

    return wrapper


def time_bound(value: str | None) -> str | None:
    """`2h`, `1d`... mean that long ago; anything else goes to the API as written (ISO 8601)."""
    if value is None:
        return None
    try:
        seconds = parse_duration(value)
    except ValueError:
        return value
    return (datetime.now(UTC) - timedelta(seconds=seconds)).isoformat(timespec="seconds")


@app.callback()
def cli(ctx: typer.Context, api: ApiOption = DEFAULT_API, json_output: JsonOption = False) -> None:
    """Flowdeck: workflows on AWS Step Functions, or on this machine with `flowdeck up`."""
    ctx.obj = Options(api=api, json=json_output)


@app.command()
@reports_api_errors
def run(
    ctx: typer.Context,
    workflow: Annotated[str, typer.Argument(help="Workflow name.")],
    input_pairs: Annotated[
        list[str] | None, typer.Option("--input", "-i", metavar="KEY=VALUE", help="An input; repeatable.")
    ] = None,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Watch the run until it finishes.")] = False,
    json_output: JsonOption = False,
) -> None:
    """Start a manual run of WORKFLOW; with --follow, exit non-zero unless it succeeds."""
    options = _options(ctx, json_output)
    console = Console()
    with ApiClient(options.api) as client:
        declared = client.get_workflow(workflow).get("inputs", {})
        started = client.start(workflow, parse_inputs(input_pairs or [], declared))
        run_id = str(started["run_id"])
        queued = started.get("status") == RunStatus.QUEUED
        if not follow:
            if options.json:
                _print_json({k: v for k, v in started.items() if k in ("run_id", "status")})
            elif queued:
                console.print(
                    f"Queued run [bold]{run_id}[/bold]: {workflow} is at its concurrency limit and starts it "
                    f"when a run ends\n  watch it: flowdeck show {run_id}"
                )
            else:
                # The command on its own line: wrapping never splits it from the run id.
                console.print(f"Started run [bold]{run_id}[/bold]\n  watch it: flowdeck show {run_id}")
            return
        if queued and not options.json:
            console.print(f"Queued run [bold]{run_id}[/bold]: waiting for a free slot of {workflow}…")
        try:
            final = wait_for_run(client, run_id) if options.json else follow_run(client, run_id, console)
        except KeyboardInterrupt:
            Console(stderr=True).print(f"stopped following; the run goes on: flowdeck show {run_id}")
            raise typer.Exit(130) from None
    if options.json:
        _print_json(final)
    if final.get("status") != RunStatus.SUCCEEDED:
        raise typer.Exit(1)


@app.command()
@reports_api_errors
def runs(
    ctx: typer.Context,
    status: Annotated[RunStatus | None, typer.Option(help="Only runs in this status.")] = None,
    trigger: Annotated[Trigger | None, typer.Option(help="Only runs started this way.")] = None,
    workflow: Annotated[str | None, typer.Option(help="Only runs of this workflow.")] = None,
    user: Annotated[str | None, typer.Option(help="Only runs started by this user.")] = None,
    since: Annotated[
        str | None, typer.Option(help="Started at or after: ISO time, or an age such as 2h.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="Started at or before: ISO time, or an age.")] = None,
    sort: Annotated[Literal["started_at", "duration", "cost"], typer.Option(help="Sort key.")] = "started_at",
    order: Annotated[
        Literal["desc", "asc"], typer.Option(help="Newest first (desc) or oldest first.")
    ] = "desc",
    limit: Annotated[int, typer.Option(min=1, max=200, help="Runs per page.")] = 50,
    cursor: Annotated[
        str | None, typer.Option(help="Next page: the cursor the previous page printed.")
    ] = None,
    every_page: Annotated[
        bool, typer.Option("--all", help="Follow the cursors: every matching run, not one page.")
    ] = False,
    json_output: JsonOption = False,
) -> None:
    """Run history, newest first; filters combine. A page may be short when no index fits the filters."""
    options = _options(ctx, json_output)
    query = {
        "workflow": workflow,
        "status": status.value if status else None,
        "trigger": trigger.value if trigger else None,
        "started_by": user,
        "since": time_bound(since),
        "until": time_bound(until),
        "sort": sort,
        "order": order,
        "limit": limit,
    }
    with ApiClient(options.api) as client:
        page = client.list_runs(**query, cursor=cursor)
        seen = set()
        while every_page and page.get("next_cursor") and page["next_cursor"] not in seen:
            seen.add(page["next_cursor"])
            more = client.list_runs(**query, cursor=page["next_cursor"])
            page = {"runs": page["runs"] + more["runs"], "next_cursor": more.get("next_cursor")}
    if options.json:
        _print_json(page)
        return
    console = Console()
    if not page["runs"]:
        console.print("no runs" + (" on this page" if page.get("next_cursor") else ""))
    else:
        table = runs_table(page["runs"], console.width)
        console.print(table)
        if hidden := hidden_columns(table):
            console.print(f"[dim]not shown at this width: {', '.join(hidden)} (--json shows all)[/dim]")
    if page.get("next_cursor"):
        hint = escape(next_page_command(query, page["next_cursor"]))
        console.print(f"[dim]more: {hint}[/dim]", soft_wrap=True)


RUNS_FLAGS = {
    "workflow": "--workflow",
    "status": "--status",
    "trigger": "--trigger",
    "started_by": "--user",
    "since": "--since",
    "until": "--until",
    "sort": "--sort",
    "order": "--order",
    "limit": "--limit",
}
RUNS_DEFAULTS = {"sort": "started_at", "order": "desc", "limit": 50}


def next_page_command(query: dict[str, Any], cursor: str) -> str:
    """`flowdeck runs` with the same query and the cursor (ages resolved: a cursor continues one query)."""
    parts = [
        f"{flag} {shlex.quote(str(query[name]))}"
        for name, flag in RUNS_FLAGS.items()
        if query.get(name) is not None and query[name] != RUNS_DEFAULTS.get(name)
    ]
    return " ".join(["flowdeck runs", *parts, "--cursor", cursor])


@app.command()
@reports_api_errors
def show(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    json_output: JsonOption = False,
) -> None:
    """One run: status, duration and each step with its summary or error."""
    options = _options(ctx, json_output)
    with ApiClient(options.api) as client:
        found = client.get_run(run_id)
    if options.json:
        _print_json(found)
    else:
        Console().print(run_view(found))


up.register(app)
artifacts.register(app)
logs.register(app)
costs.register(app)
triggers.register(app)
retry_command.register(app)
cancel_command.register(app)
decision_commands.register(app)
approval_commands.register(app)
pause_commands.register(app)
open_page.register(app)


def main() -> None:
    """The `flowdeck` console script."""
    app()


if __name__ == "__main__":
    main()
