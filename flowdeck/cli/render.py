"""How runs look in a terminal: the plain-text summary, its rich twin, the run table and live following."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.live import Live
from rich.markup import escape
from rich.spinner import Spinner
from rich.table import Table
from rich.text import Text

from flowdeck.cli.client import ApiClient, ApiError
from flowdeck.clock import seconds_between
from flowdeck.definition.durations import format_duration
from flowdeck.status import FINISHED_RUN_STATUSES, RunStatus

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
BUDGET_EXCEEDED = "BudgetExceeded"
# What is still going, so its duration is measured up to now (a queued run has not started).
GOING = {RunStatus.RUNNING.value, RunStatus.WAITING.value}
# A run in one of these with `cancel_requested_at` is being cancelled: its processes are still ending.
UNDER_WAY = {"queued", "running", "waiting"}
POLL_SECONDS = 0.25
# The run item appears when the state machine's first state runs, a moment after StartExecution.
APPEAR_WITHIN_SECONDS = 30.0
DETAIL_CHARS = 160
ERROR_CHARS = 2000


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


def elapsed(item: dict[str, Any]) -> float | None:
    """A run's or step's duration as of now: one still going keeps growing (not its first reading)."""
    if item.get("started_at") and not item.get("ended_at") and item.get("status") in GOING:
        return seconds_between(item["started_at"], None)
    return item.get("duration_s")


def _one_line(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first if len(first) <= DETAIL_CHARS else first[: DETAIL_CHARS - 1] + "…"


def usd(value: Any) -> str:
    """Dollars as the API gives them (a decimal string), to the cent, or finer when below a cent."""
    amount = Decimal(str(value or 0))
    return f"${amount:.2f}" if amount == 0 or amount >= Decimal("0.01") else f"${amount:.6f}"


def exact_usd(value: Any) -> str:
    """Every digit of an amount (`$0.0512`): beside a limit it passed, rounding could make them read equal."""
    try:
        amount = Decimal(str(value or 0))
    except InvalidOperation:
        return usd(value)
    return "$" + format(amount.normalize(), "f")


def run_cost(run: dict[str, Any]) -> str:
    """The run's cost as shown in its header: exact when the budget guard stopped it (its message says
    `run cost $0.0512 passed max_cost_usd $0.05`: `Cost: $0.05` beside that would read as a contradiction)."""
    budget = BUDGET_EXCEEDED in (run.get("cancel_reason"), run.get("error"))
    return exact_usd(run["cost_usd"]) if budget else usd(run["cost_usd"])


# A run over its workflow's runtime_config.concurrency.max_runs waits for a slot.
QUEUED_NOTE = "Queued since {since}: the workflow is at its concurrency limit; it starts when a run ends."


def _header_parts(run: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs of the run header, in order."""
    parts = [
        ("Workflow", str(run.get("workflow"))),
        ("Run ID", str(run.get("run_id"))),
        ("Status", f"{status_label(run.get('status'))} {icon(run.get('status'))}"),
        ("Duration", run_duration(elapsed(run))),
        ("Trigger", str(run.get("trigger"))),
    ]
    if Decimal(str(run.get("cost_usd") or 0)):
        parts.append(("Cost", run_cost(run)))
    return parts


def header_lines(run: dict[str, Any], width: int | None = None) -> list[str]:
    """The header on one line, or, when wider than `width`, several lines each holding whole `label: value`
    parts (a run id never breaks)."""
    lines: list[str] = []
    for label, value in _header_parts(run):
        part = f"{label}: {value}"
        if lines and (width is None or len(lines[-1]) + 3 + len(part) <= width):
            lines[-1] += "   " + part
        else:
            lines.append(part)
    return lines


def _header(run: dict[str, Any]) -> str:
    return header_lines(run)[0]


def _step_parts(step: dict[str, Any]) -> tuple[str, str]:
    """(timing, detail) of a step: `1.2s (attempt 2)` and its summary, error or why it never ran."""
    status = step.get("status")
    if status == "skipped":
        timing = "skipped"
    elif (seconds := elapsed(step)) is not None:
        timing = format_duration(seconds)
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
        error_text(step.get("error"), step.get("cause"))
        if status in {"failed", "cancelled"} and step.get("error")
        else step.get("summary")
    )
    if note := _pause_note(step):
        timing = f"{timing} · {note}".strip(" ·")
    if status == "waiting" and step.get("error"):
        detail = error_text(step["error"], step.get("cause"))
    if isinstance(step.get("approval"), dict):
        detail = approval_detail(step)
    if step.get("not_run"):
        # A step the ended run never reached (flowdeck.runs.unrun).
        detail = f"not run: {step['not_run']}"
    if not detail:
        return timing, ""
    # An error keeps its cause whole (the terminal wraps it); a summary is one line.
    return timing, _whole(str(detail)) if step.get("error") else _one_line(str(detail))


def error_text(error: Any, cause: Any) -> str:
    """`StepTimeout: step sleepy ran past its timeout of 1s`, or the error alone."""
    return f"{error}: {cause}" if cause and cause != error else str(error)


def _whole(text: str) -> str:
    """Every line of `text` on one line (` ⏎ ` between them), up to ERROR_CHARS."""
    joined = " ⏎ ".join(line.strip() for line in text.strip().splitlines() if line.strip())
    return joined if len(joined) <= ERROR_CHARS else joined[: ERROR_CHARS - 1] + "…"


def attempt_lines(step: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, detail) per earlier attempt of a step that ran more than once: `attempt 1 ✗ 755ms`."""
    attempts = [a for a in step.get("attempts") or [] if isinstance(a, dict)]
    if len(attempts) < 2 and not (attempts and attempts[0].get("attempt") != step.get("attempt")):
        return []
    rows = []
    for attempt in attempts:
        took = seconds_between(attempt.get("started_at"), attempt.get("ended_at"))
        label = f"attempt {attempt.get('attempt')} {icon(attempt.get('status'))}"
        if took is not None:
            label += f" {format_duration(took)}"
        error = attempt.get("error")
        rows.append((label, _whole(error_text(error, attempt.get("cause"))) if error else ""))
    return rows


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
    return _whole(error_text(run["error"], run.get("error_cause")))


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
        indent = " " * (number_width + 1)
        for label, why in attempt_lines(step):
            lines.append(f"{indent}↳ {label}  └─ {why}" if why else f"{indent}↳ {label}")
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
    header = RunHeader(run)
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
        for label, why in attempt_lines(step):
            steps.add_row(
                "", "", "", Text(f"↳ {label}", style="dim"), Text(f" └─ {why}", "red") if why else ""
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


class RunHeader:
    """The run header, laid out for the width it is printed at (`header_lines`), styled."""

    def __init__(self, run: dict[str, Any]) -> None:
        self.run = run

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        status_style = STYLES.get(self.run.get("status") or "", "")
        for line in header_lines(self.run, options.max_width):
            text = Text(line, no_wrap=True, overflow="fold")
            for label, value in _header_parts(self.run):
                start = line.find(f"{label}: ")
                if start < 0:
                    continue
                text.stylize("dim", start, start + len(label) + 1)
                at = start + len(label) + 2
                style = "bold" if label == "Workflow" else status_style if label == "Status" else ""
                if style:
                    text.stylize(style, at, at + len(value))
            yield text


def _local_time(value: str | None) -> str:
    if not value:
        return "-"
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone().strftime("%Y-%m-%d %H:%M:%S")
    except ValueError:
        return value


RUN_COLUMNS = ("Run ID", "Workflow", "Trigger", "Status", "Duration", "Cost", "Started by", "Started at")
# Left out, in this order, when the table would not fit the terminal; the run id never is, nor cut.
DROPPED_FIRST = ("Started by", "Cost", "Trigger", "Duration")
# A workflow name longer than the room left wraps (folded) rather than push the run id.
WRAPPING = frozenset({"Workflow", "Started by"})
COLUMN_GAP = 2


def _run_cells(row: dict[str, Any]) -> dict[str, str]:
    return {
        "Run ID": str(row["run_id"]),
        "Workflow": str(row.get("workflow")),
        "Trigger": str(row.get("trigger")),
        "Status": f"{icon(row.get('status'))} {row.get('status')}",
        # A run still going has no end yet: its duration so far.
        "Duration": run_duration(row.get("duration_s")),
        "Cost": usd(row.get("cost_usd")),
        "Started by": str(row.get("started_by")),
        "Started at": _local_time(row.get("started_at")),
    }


def fitting_columns(cells: list[dict[str, str]], width: int) -> list[str]:
    """The history columns that fit `width`: all, or without the least needed ones (DROPPED_FIRST)."""

    def needed(column: str) -> int:
        return max([len(column), *(len(c[column]) for c in cells)])

    columns = list(RUN_COLUMNS)
    for column in (None, *DROPPED_FIRST):
        if column is not None:
            columns.remove(column)
        if sum(needed(c) for c in columns) + COLUMN_GAP * (len(columns) - 1) <= width:
            break
    return columns


def runs_table(runs: list[dict[str, Any]], width: int | None = None) -> Table:
    """Run history as a table (GET /runs rows), with the columns that fit `width` (all when None)."""
    cells = [_run_cells(row) for row in runs]
    columns = list(RUN_COLUMNS) if width is None else fitting_columns(cells, width)
    table = Table(box=None, header_style="bold", pad_edge=False)
    for column in columns:
        table.add_column(
            column,
            no_wrap=column not in WRAPPING,
            overflow="fold",
            justify="right" if column == "Cost" else "left",
            # A run id is the value people copy: never cut, never wrapped.
            min_width=max((len(c["Run ID"]) for c in cells), default=6) if column == "Run ID" else None,
        )
    for row, cell in zip(runs, cells, strict=True):
        status = row.get("status")
        table.add_row(
            *(
                Text(cell[c], style=STYLES.get(status or "", "")) if c == "Status" else escape(cell[c])
                for c in columns
            )
        )
    return table


def hidden_columns(table: Table) -> list[str]:
    """The history columns runs_table left out (to say so under it)."""
    shown = {str(column.header) for column in table.columns}
    return [column for column in RUN_COLUMNS if column not in shown]


def wait_notice(run_id: str, step: dict[str, Any]) -> list[str]:
    """What a waiting step waits for and the commands that decide it (rich markup, escaped)."""
    step_id, rid = escape(str(step["id"])), escape(run_id)
    approval = step.get("approval")
    if isinstance(approval, dict):
        message = f": {escape(str(approval['message']))}" if approval.get("message") else ""
        return [
            f"[yellow]⏸ Approval needed[/yellow] for step [bold]{step_id}[/bold]{message}",
            f"  {approval.get('min_approvals', 1)} of: {escape(str(approval.get('who_may_decide', '')))}; "
            f"deadline {_local_time(approval.get('deadline'))}",
            f"  Decide with: flowdeck approve {rid} {step_id}",
            f"               flowdeck reject {rid} {step_id} --comment WHY",
        ]
    why = f" ({escape(error_text(step['error'], step.get('cause')))})" if step.get("error") else ""
    choices = [f"flowdeck retry {rid} --step {step_id}"]
    if step.get("allow_skip"):
        choices.append(f"flowdeck skip {rid} {step_id}")
    choices.append(f"flowdeck cancel {rid}")
    return [
        f"[yellow]⏸ Paused[/yellow]: step [bold]{step_id}[/bold] failed{why}; "
        f"it waits for a decision until {_local_time(step.get('wait_deadline'))}",
        *(f"  {'Decide with:' if i == 0 else ' ' * 12} {choice}" for i, choice in enumerate(choices)),
    ]


class WaitNotices:
    """Prints, once per wait, what a followed run waits for (an approval, a step paused on failure)."""

    def __init__(self, run_id: str, console: Console) -> None:
        self.run_id = run_id
        self.console = console
        self.told: set[tuple[str, Any, Any]] = set()

    def pending(self, run: dict[str, Any]) -> list[dict[str, Any]]:
        """Waiting steps not told yet (a step that waits again, after a retry, is told again)."""
        return [
            s for s in run.get("steps", []) if s.get("status") == "waiting" and self._key(s) not in self.told
        ]

    @staticmethod
    def _key(step: dict[str, Any]) -> tuple[str, Any, Any]:
        return (str(step["id"]), step.get("attempt"), step.get("waiting_since"))

    def tell(self, run: dict[str, Any]) -> None:
        """Print the notice of each waiting step of `run` (a full GET /runs/{id} view) not told yet."""
        for step in self.pending(run):
            self.told.add(self._key(step))
            # Wrapped by rich at spaces, so a run id is never split across lines.
            self.console.print("\n".join(wait_notice(self.run_id, step)), highlight=False)


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
            if run.get("status") in FINISHED_RUN_STATUSES:
                return run
        time.sleep(poll_seconds or POLL_SECONDS)


def follow_run_live(client: ApiClient, run_id: str, console: Console) -> dict[str, Any]:
    """follow_run on the WebSocket: steps update and lines print as they happen (raises LiveUnavailable)."""
    from flowdeck.cli.live import LiveFeed, follow, ws_url
    from flowdeck.cli.logs import print_lines

    feed = LiveFeed(ws_url(client.base_url), run_id, user=client.http.headers.get("X-Flowdeck-User"))
    run: dict[str, Any] = {"run_id": run_id, "steps": []}
    waiting = Text(f"waiting for run {run_id} to start…", "dim")

    def view() -> RenderableType:
        # Rendered on every refresh, not per message: a running step's duration keeps growing.
        return run_view(run, live=True) if "status" in run else waiting

    with Live(console=console, refresh_per_second=8, transient=True, get_renderable=view) as live:
        notices = WaitNotices(run_id, live.console)

        def on_change(current: dict[str, Any]) -> None:
            if "trigger" not in current:  # first sign of the run: take its full view (plan, trigger)
                with contextlib.suppress(ApiError):
                    seen = {k: v for k, v in current.items() if k != "steps"}
                    current.update(client.get_run(run_id) | seen)
            if notices.pending(current):
                # A step message has no approval policy or deadline: the run's full view has.
                with contextlib.suppress(ApiError):
                    notices.tell(client.get_run(run_id))
            live.refresh()

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

    latest: list[dict[str, Any]] = []

    def show(run: dict[str, Any] | None) -> None:
        if run:
            notices.tell(run)
        latest[:] = [run] if run else []

    def view() -> RenderableType:
        # Rendered on every refresh, not per poll: a running step's duration keeps growing.
        return (
            run_view(latest[0], live=True) if latest else Text(f"waiting for run {run_id} to start…", "dim")
        )

    with Live(console=console, refresh_per_second=8, transient=True, get_renderable=view) as live:
        notices = WaitNotices(run_id, live.console)
        run = wait_for_run(client, run_id, show)
    console.print(run_view(run))
    return run
