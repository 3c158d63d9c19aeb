"""`flowdeck up --demo`: the demo run's approval, shown and then approved as its approvers (labelled)."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from flowdeck.cli.client import ApiClient, ApiError
from flowdeck.status import FINISHED_RUN_STATUSES

POLL_SECONDS = 0.5
GIVE_UP_SECONDS = 600.0


def _waiting_approvals(run: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        s
        for s in run.get("steps", [])
        if s.get("status") == "waiting" and isinstance(s.get("approval"), dict)
    ]


def approve_when_waiting(api_url: str, run_id: str, console: Console) -> None:
    """Poll the run; approve each waiting approval step as the users its policy names (min_approvals)."""
    done: set[str] = set()
    deadline = time.monotonic() + GIVE_UP_SECONDS
    with ApiClient(api_url, user="demo") as client:
        while time.monotonic() < deadline:
            try:
                run = client.get_run(run_id)
            except ApiError:
                time.sleep(POLL_SECONDS)
                continue
            if run.get("status") in FINISHED_RUN_STATUSES:
                return
            for step in _waiting_approvals(run):
                if step["id"] in done:
                    continue
                done.add(step["id"])
                _approve(api_url, run_id, step, console)
            time.sleep(POLL_SECONDS)


def _approve(api_url: str, run_id: str, step: dict[str, Any], console: Console) -> None:
    approval = step["approval"]
    users = list((approval.get("approvers") or {}).get("users") or [])
    needed = int(approval.get("min_approvals") or 1)
    console.print(
        f"[yellow]⏸ Approval needed[/yellow] for step [bold]{escape(step['id'])}[/bold]: "
        f"{escape(str(approval.get('message', '')))}\n"
        f"  {needed} of: {escape(str(approval.get('who_may_decide', '')))}; "
        f"deadline {escape(str(approval.get('deadline')))}\n"
        f"  Decide with: flowdeck inbox --as {escape(users[0] if users else 'EMAIL')} · "
        f"flowdeck approve {escape(run_id)} {escape(step['id'])} --as EMAIL · "
        f"flowdeck inbox --emails --all (the e-mailed links)",
        soft_wrap=True,
    )
    for user in users[:needed]:
        console.print(
            f"[magenta]demo: approving as {escape(user)}[/magenta] "
            f"(POST /runs/{escape(run_id)}/steps/{escape(step['id'])}/approve)"
        )
        try:
            with ApiClient(api_url, user=user) as client:
                client.request(
                    "POST",
                    f"/runs/{run_id}/steps/{step['id']}/approve",
                    body={"comment": "approved by flowdeck up --demo"},
                )
        except ApiError as exc:
            console.print(f"[red]demo: approval as {escape(user)} failed:[/red] {escape(exc.message)}")
