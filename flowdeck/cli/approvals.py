"""`flowdeck inbox [--emails] [--json]`, `flowdeck approve|reject RUN STEP [--comment]`."""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from urllib.parse import quote

import typer
from rich.console import Console
from rich.markup import escape

from flowdeck.cli.client import DEFAULT_API, ApiClient, ApiError

AsUser = Annotated[
    str | None,
    typer.Option(
        "--as", help="Act as this approver (local stack only; default FLOWDECK_USER or your login)."
    ),
]


def _fail(exc: ApiError) -> typer.Exit:
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {escape(exc.message)}")
    return typer.Exit(1)


def sent_emails(
    api: str, user: str | None = None, run_id: str | None = None, everyone: bool = False
) -> list[dict[str, Any]]:
    """The approval e-mails the local stack sent (to `user`, or to everyone), with their signed links."""
    params = {"run_id": run_id, "all": "true" if everyone else None}
    with ApiClient(api, user) as client:
        answer = client.request("GET", "/inbox/emails", params=params)
    return list(answer.get("emails", []))


def email_link(
    api: str, run_id: str, approver: str, decision: Literal["approve", "reject"], step: str | None = None
) -> str:
    """The signed `decision` link e-mailed to `approver` for run `run_id` (the newest); for tests too."""
    emails = [
        e
        for e in sent_emails(api, approver, run_id)
        if e.get("to") == approver and (step is None or e.get("step") == step)
    ]
    if not emails:
        raise LookupError(f"no approval e-mail to {approver} for run {run_id}")
    return str(emails[-1]["links"][decision])


def inbox(
    ctx: typer.Context,
    emails: Annotated[
        bool, typer.Option("--emails", help="Print the approval e-mails sent (local stack).")
    ] = False,
    everyone: Annotated[
        bool, typer.Option("--all", help="With --emails: to every approver, not just you.")
    ] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    user: AsUser = None,
) -> None:
    """Approvals waiting for you (or, with --emails, the approval e-mails sent and their links)."""
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    console = Console(soft_wrap=True)
    try:
        if emails:
            sent = sent_emails(api, user, everyone=everyone)
            if as_json:
                typer.echo(json.dumps(sent, indent=2, ensure_ascii=False))
                return
            if not sent:
                console.print("No approval e-mails sent yet.")
            for email in sent:
                console.print(
                    f"[bold]To:[/bold] {escape(email['to'])}  [dim]{escape(email['sent_at'])}[/dim]"
                )
                console.print(f"[bold]Subject:[/bold] {escape(email['subject'])}")
                console.print(escape(email["body"]))
                console.print()
            return
        with ApiClient(api, user) as client:
            answer = client.request("GET", "/inbox")
    except ApiError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    waiting = answer.get("approvals", [])
    if not waiting:
        console.print(f"Nothing waiting for {escape(answer.get('approver', 'you'))}.")
        return
    for item in waiting:
        console.print(
            f"[bold]{escape(str(item.get('workflow') or ''))}[/bold] run {escape(item['run_id'])} "
            f"step [bold]{escape(item['step'])}[/bold]: "
            f"{item['approved']} of {item['min_approvals']} approvals, "
            f"deadline {escape(str(item.get('deadline')))}"
        )
        console.print(f"  {escape(str(item.get('message', '')))}")
        console.print(
            f"  flowdeck approve {escape(item['run_id'])} {escape(item['step'])}   |   "
            f"flowdeck reject {escape(item['run_id'])} {escape(item['step'])} --comment '...'"
        )


def decide(
    ctx: typer.Context,
    decision: Literal["approve", "reject"],
    run_id: str,
    step: str,
    comment: str | None,
    user: str | None,
    json_output: bool,
) -> None:
    api = getattr(ctx.obj, "api", DEFAULT_API)
    as_json = json_output or bool(getattr(ctx.obj, "json", False))
    path = f"/runs/{quote(run_id, safe='')}/steps/{quote(step, safe='')}/{decision}"
    try:
        with ApiClient(api, user) as client:
            answer = client.request("POST", path, body={"comment": comment} if comment else None)
    except ApiError as exc:
        raise _fail(exc) from None
    if as_json:
        typer.echo(json.dumps(answer, indent=2, ensure_ascii=False))
        return
    done = "Approved" if decision == "approve" else "Rejected"
    Console(soft_wrap=True).print(
        f"{done} step [bold]{escape(step)}[/bold] of run {escape(run_id)}: {answer['approved']} of "
        f"{answer['min_approvals']} approvals, step {escape(answer['status'])}. "
        f"flowdeck show {escape(run_id)}"
    )


def approve(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    step: Annotated[str, typer.Argument(metavar="STEP", help="The approval step.")],
    comment: Annotated[str | None, typer.Option("--comment", help="Kept with the decision.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    user: AsUser = None,
) -> None:
    """Approve STEP of RUN (counts once per person; the run goes on at min_approvals)."""
    decide(ctx, "approve", run_id, step, comment, user, json_output)


def reject(
    ctx: typer.Context,
    run_id: Annotated[str, typer.Argument(metavar="RUN", help="Run ID.")],
    step: Annotated[str, typer.Argument(metavar="STEP", help="The approval step.")],
    comment: Annotated[str | None, typer.Option("--comment", help="Why: shown on the run.")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    user: AsUser = None,
) -> None:
    """Reject STEP of RUN: the step and the run fail with your comment."""
    decide(ctx, "reject", run_id, step, comment, user, json_output)


def register(app: typer.Typer) -> None:
    app.command()(inbox)
    app.command()(approve)
    app.command()(reject)
