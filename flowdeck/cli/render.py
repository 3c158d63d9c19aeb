"""How runs look in a terminal: the plain-text summary, its rich twin, the run table and live following."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from flowdeck.cli.client import ApiClient, ApiError
from flowdeck.definition.durations import format_duration
from flowdeck.service import seconds_between
from flowdeck.status import RunStatus

ICONS = {
    "queued": "○",
    "pending": "○",
    "running": "●",
    "waiting": "⏸",
    "succeeded": "✓",
    "failed": "✗",
    "timed_out": "✗",
    "skipped": "⊘",
    "cancelled": "■",
}
STYLES = {
    "queued": "dim",
    "pending": "dim",
    "running": "cyan",
    "waiting": "yellow",
    "succeeded": "green",
    "failed": "red",
    "timed_out": "red",
    "skipped": "dim",
    "cancelled": "magenta",
}
FINISHED = {status.value for status in RunStatus if status.finished}
# A run in one of these with `cancel_requested_at` is being cancelled: its processes are still ending.
UNDER_WAY = {"queued", "running", "waiting"}
POLL_SECONDS = 0.25
# The run item appears when the state machine's first state runs, a moment after StartExecution.
APPEAR_WITHIN_SECONDS = 30.0
DETAIL_CHARS = 160


def icon(status: str | None) -> str:
    return ICONS.get(status or "", "?")


def status_label(status: str | None) -> str:
    """`timed_out` -> `Timed out`."""
    return (status or "unknown").replace("_", " ").capitalize()


def run_duration(seconds: float | None) -> str:
    """`0m 07s`, `12m 30s`, `1h 02m 03s` (the run header's form)."""
    if seconds is None:
        return "-"
    minutes, secs = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s"


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= DETAIL_CHARS else first[: DETAIL_CHARS - 1] + "…"


def usd(value: Any) -> str:
    """Dollars as the API gives them (string or number), to the cent, or finer when below a cent."""
    amount = float(value or 0)
    return f"${amount:.2f}" if amount == 0 or amount >= 0.01 else f"${amount:.6f}"


def _cost(run: dict[str, Any]) -> str:
    """`   Cost: $0.12` once the run has recorded a cost; nothing before."""
    return f"   Cost: {usd(run['cost_usd'])}" if run.get("cost_usd") else ""


# A run over its workflow's runtime_config.concurrency.max_runs waits for a slot.
QUEUED_NOTE = "Queued since {since}: the workflow is at its concurrency limit; it starts when a run ends."


def _header(run: dict[str, Any]) -> str:
    return (
        f"Workflow: {run.get('workflow')}   Run ID: {run.get('run_id')}   "
        f"Status: {status_label(run.get('status'))} {icon(run.get('status'))}   "
        f"Duration: {run_duration(run.get('duration_s'))}   Trigger: {run.get('trigger')}{_cost(run)}"
    )


def _step_parts(step: dict[str, Any]) -> tuple[str, str]:
    """(timing, detail) of a step: `1.2s (attempt 2)` and its summary or error."""
    status = step.get("status")
    if status == "skipped":
        timing = "skipped"
    elif step.get("duration_s") is not None:
        timing = format_duration(step["duration_s"])
    else:
        timing = ""
    if (step.get("attempt") or 0) > 1:
        timing = f"{timing} (attempt {step['attempt']})".strip()
    if step.get("cost_usd") is not None:
        timing = f"{timing} {usd(step['cost_usd'])}".strip()
    if step.get("reused_from"):
        # Taken over by a retry: it did not run in this run.
        timing = f"↺ reused from {step['reused_from']}"
    detail = (
        step.get("error") if status in {"failed", "cancelled"} and step.get("error") else step.get("summary")
    )
    if note := _pause_note(step):
        timing = f"{timing} · {note}".strip(" ·")
    if status == "waiting" and step.get("error"):
        detail = f"{step['error']}: {step['cause']}" if step.get("cause") else step["error"]
    if isinstance(step.get("approval"), dict):
        detail = approval_detail(step)
    return timing, _one_line(str(detail)) if detail else ""


def approval_detail(step: dict[str, Any]) -> str:
    """`Approved by jane@example.com, sam@example.com`, who may still decide and until when, or the reject."""
    approval = step["approval"]
    status = step.get("status")
    approvers = [str(a.get("by")) for a in approval.get("approvals") or []]
    if status == "succeeded":
        return f"Approved by {', '.join(approvers)}"
    rejects = [d for d in step.get("decisions") or [] if d.get("decision") == "reject"]
    if rejects:
        last = rejects[-1]
        comment = f": {last['comment']}" if last.get("comment") else ""
        return f"Rejected by {last.get('by')} via {last.get('channel')}{comment}"
    if status == "waiting":
        so_far = f" (approved by {', '.join(approvers)})" if approvers else ""
        return (
            f"Waiting for {approval.get('approved', len(approvers))} of {approval.get('min_approvals', 1)} "
            f"approvals from {approval.get('who_may_decide', '')}{so_far}, "
            f"deadline {_local_time(approval.get('deadline'))}"
        )
    if step.get("error") and step.get("cause"):
        return f"{step['error']}: {step['cause']}"
    error = step.get("error")
    return str(error or "")


DECIDED = {"retry": "retried", "skip": "skipped", "cancel": "cancelled"}


def _pause_note(step: dict[str, Any]) -> str:
    """A paused step's wait (`paused 3m 05s, fails at ...`) and who decided what, when."""
    if isinstance(step.get("approval"), dict):
        return ""  # an approval's decisions are its detail line (approval_detail)
    notes = [
        f"{DECIDED.get(d.get('decision'), d.get('decision'))} by {d.get('by')} at {_local_time(d.get('at'))}"
        for d in step.get("decisions") or []
    ]
    if step.get("status") == "waiting":
        waited = run_duration(step.get("waited_s") or seconds_between(step.get("waiting_since"), None))
        choices = "retry or skip" if step.get("allow_skip") else "retry"
        notes.append(f"paused {waited} for {choices}, fails at {_local_time(step.get('wait_deadline'))}")
    return " · ".join(notes)


def _run_error(run: dict[str, Any]) -> str | None:
    """The run's own error, when no failed step already tells it."""
    if not run.get("error") or any(s.get("error") for s in run.get("steps", [])):
        return None
    return _one_line(f"{run['error']}: {run['error_cause']}" if run.get("error_cause") else str(run["error"]))


def _cancelled(run: dict[str, Any]) -> str | None:
    """Why the run was cancelled (`BudgetExceeded: run cost $0.02 passed max_cost_usd $0.01`), if it was."""
    if run.get("status") != "cancelled" or not run.get("cancel_reason"):
        return None
    cause = run.get("error_cause")
    return _one_line(f"{run['cancel_reason']}: {cause}" if cause else str(run["cancel_reason"]))


def cancelling(run: dict[str, Any]) -> str | None:
    """`Cancelling… (graceful since 12:00:01)` while a cancel is under way (processes still ending)."""
    if not run.get("cancel_requested_at") or run.get("status") not in UNDER_WAY:
        return None
    return f"Cancelling… ({run.get('cancel_mode')} since {_local_time(run['cancel_requested_at'])})"


def cleanup_lines(run: dict[str, Any]) -> list[str]:
    """Who cancelled how, and each cleanup's result (`  ✗ apply  exit code 1: ...`): failures shown."""
    if not run.get("cancel_mode") or (run.get("status") != "cancelled" and cancelling(run) is None):
        return []
    lines = [f"Cancel: {run['cancel_mode']} by {run.get('cancelled_by') or 'unknown'}"]
    if run.get("cleanup_status"):
        error = f"  └─ {_one_line(str(run['cleanup_error']))}" if run.get("cleanup_error") else ""
        lines.append(f"Cleanup: {run['cleanup_status']}{error}")
    for entry in run.get("cleanup") or []:
        status = str(entry.get("status", ""))
        detail = entry.get("cause") or entry.get("error") if status == "failed" else ""
        line = f"  {icon(status)} {entry.get('step')} {status}"
        if entry.get("duration_s") is not None:
            line += f" {format_duration(entry['duration_s'])}"
        lines.append(f"{line}  └─ {_one_line(str(detail))}" if detail else line)
    return lines


def retry_links(run: dict[str, Any]) -> list[str]:
    """`Retry of: <run>` and `Retried by: <runs>`, for a run that has them."""
    links = [f"Retry of: {run['retry_of']}"] if run.get("retry_of") else []
    if run.get("retries"):
        links.append("Retried by: " + ", ".join(run["retries"]))
    return links


def summary_lines(run: dict[str, Any]) -> list[str]:
    """The run as plain text: a header line, then one line per step (testable, no colour)."""
    steps = run.get("steps", [])
    number_width = len(f"{len(steps)}.")
    id_width = max((len(s["id"]) for s in steps), default=0)
    lines = [_header(run)]
    for number, step in enumerate(steps, 1):
        timing, detail = _step_parts(step)
        line = (
            f"{f'{number}.':<{number_width}} {step['id']:<{id_width}}   {icon(step.get('status'))} {timing}"
        )
        lines.append(f"{line.rstrip()}  └─ {detail}" if detail else line.rstrip())
    if error := _run_error(run):
        lines.append(f"Error: {error}")
    if reason := _cancelled(run):
        lines.append(f"Cancelled: {reason}")
    if under_way := cancelling(run):
        lines.append(under_way)
    lines += cleanup_lines(run)
    return lines + retry_links(run)


def run_view(run: dict[str, Any], live: bool = False) -> RenderableType:
    """The rich twin of summary_lines; with `live`, running steps spin."""
    status = run.get("status")
    header = Text.assemble(
        ("Workflow: ", "dim"),
        (str(run.get("workflow")), "bold"),
        ("   Run ID: ", "dim"),
        str(run.get("run_id")),
        ("   Status: ", "dim"),
        (f"{status_label(status)} {icon(status)}", STYLES.get(status or "", "")),
        ("   Duration: ", "dim"),
        run_duration(run.get("duration_s")),
        ("   Trigger: ", "dim"),
        str(run.get("trigger")),
        (_cost(run), ""),
    )
    steps = Table.grid(padding=(0, 1))
    for column in ("number", "id", "icon", "timing", "detail"):
        steps.add_column(column, no_wrap=column != "detail")
    for number, step in enumerate(run.get("steps", []), 1):
        step_status = step.get("status") or ""
        style = STYLES.get(step_status, "")
        mark: RenderableType = (
            Spinner("dots", style=style)
            if live and step_status == "running"
            else Text(icon(step_status), style)
        )
        timing, detail = _step_parts(step)
        steps.add_row(
            f"{number}.",
            Text(step["id"], style="dim" if step_status in {"pending", "skipped"} else ""),
            mark,
            Text(timing, style="dim"),
            Text(f" └─ {detail}", style="red" if step_status == "failed" else "dim") if detail else "",
        )
    parts: list[RenderableType] = [header, steps]
    if status == "queued":
        parts.append(Text(QUEUED_NOTE.format(since=_local_time(run.get("queued_at"))), style="dim"))
    if error := _run_error(run):
        parts.append(Text(f"Error: {error}", style="red"))
    if reason := _cancelled(run):
        parts.append(Text(f"Cancelled: {reason}", style="yellow"))
    if under_way := cancelling(run):
        parts.append(Text(under_way, style="yellow"))
    parts += [
        Text(line, style="red" if "failed" in line.split("  └─")[0] else "dim") for line in cleanup_lines(run)
    ]
    parts += [Text(link, style="dim") for link in retry_links(run)]
    return Group(*parts)


def _local_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


def runs_table(runs: list[dict[str, Any]]) -> Table:
    """Run history as a table (GET /runs rows)."""
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in ("Run ID", "Workflow", "Trigger", "Status", "Duration", "Cost", "Started by", "Started at"):
        table.add_column(
            column, no_wrap=column != "Started by", justify="right" if column == "Cost" else "left"
        )
    for row in runs:
        status = row.get("status")
        table.add_row(
            row["run_id"],
            escape(str(row.get("workflow"))),
            str(row.get("trigger")),
            Text(f"{icon(status)} {status}", style=STYLES.get(status or "", "")),
            # A run still going has no end yet: its duration so far.
            run_duration(row.get("duration_s")),
            usd(row.get("cost_usd")),
            escape(str(row.get("started_by"))),
            _local_time(row.get("started_at")),
        )
    return table


def wait_for_run(
    client: ApiClient,
    run_id: str,
    on_update: Callable[[dict[str, Any] | None], None] = lambda _: None,
    poll_seconds: float | None = None,
) -> dict[str, Any]:
    """Poll GET /runs/{id} until the run finishes; `on_update` sees each read (None: not recorded yet)."""
    appear_by = time.monotonic() + APPEAR_WITHIN_SECONDS
    while True:
        try:
            run = client.get_run(run_id)
        except ApiError as exc:
            if exc.code != "RunNotFound" or time.monotonic() > appear_by:
                raise
            on_update(None)
        else:
            on_update(run)
            if run.get("status") in FINISHED:
                return run
        time.sleep(poll_seconds or POLL_SECONDS)


def follow_run_live(client: ApiClient, run_id: str, console: Console) -> dict[str, Any]:
    """follow_run on the WebSocket: steps update and lines print as they happen (raises LiveUnavailable)."""
    from flowdeck.cli.live import LiveFeed, follow, ws_url
    from flowdeck.cli.logs import print_lines

    feed = LiveFeed(ws_url(client.base_url), run_id, user=client.http.headers.get("X-Flowdeck-User"))
    run: dict[str, Any] = {"run_id": run_id, "steps": []}
    with Live(console=console, refresh_per_second=8, transient=True) as live:

        def on_change(current: dict[str, Any]) -> None:
            if "trigger" not in current:  # first sign of the run: take its full view (plan, trigger)
                with contextlib.suppress(ApiError):
                    seen = {k: v for k, v in current.items() if k != "steps"}
                    current.update(client.get_run(run_id) | seen)
            live.update(run_view(current, live=True))

        live.update(Text(f"waiting for run {run_id} to start…", "dim"))
        follow(feed, run, on_change, lambda lines: print_lines(lines, live.console))
    final = client.get_run(run_id)
    console.print(run_view(final))
    return final


def follow_run(client: ApiClient, run_id: str, console: Console) -> dict[str, Any]:
    """Show the run's steps live until it finishes, then print its summary; returns the final run."""
    from flowdeck.cli.live import LiveUnavailable

    try:
        return follow_run_live(client, run_id, console)
    except LiveUnavailable:
        pass  # no WebSocket endpoint (an older stack, or AWS without FLOWDECK_WS_URL): poll instead

    def show(run: dict[str, Any] | None) -> None:
        live.update(run_view(run, live=True) if run else Text(f"waiting for run {run_id} to start…", "dim"))

    with Live(console=console, refresh_per_second=8, transient=True) as live:
        run = wait_for_run(client, run_id, show)
    console.print(run_view(run))
    return run
