"""Use cases behind the REST API and CLI: start a run, read runs, list history."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from flowdeck.catalog import Catalog
from flowdeck.constants import ATTEMPT_PREFIX
from flowdeck.definition.inputs import resolve_inputs
from flowdeck.errors import BadRequest, RunNotFound
from flowdeck.status import RunStatus, StepStatus, Trigger
from flowdeck.stores.executions import Executions
from flowdeck.stores.runs import RunStore, decode_cursor, encode_cursor

# GET /runs?sort=cost|duration reads at most this many recent runs (matching the filters) to sort.
SORT_WINDOW = 1000


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and readable: 20261121-182501-1a2b3c4d (also a valid execution name)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def idempotent_run_id(workflow: str, key: str) -> str:
    """The same key always names the same execution: Step Functions refuses a second one."""
    return "idem-" + hashlib.sha256(f"{workflow}\0{key}".encode()).hexdigest()[:32]


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def seconds_between(start: str | None, end: str | None) -> float | None:
    begin, finish = parse_time(start), parse_time(end)
    if begin is None:
        return None
    return round(((finish or datetime.now(UTC)) - begin).total_seconds(), 3)


class StartRun(BaseModel):
    """Body of POST /workflows/{wf}/runs."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


class RunQuery(BaseModel):
    """Query of GET /runs."""

    model_config = ConfigDict(extra="forbid")
    workflow: str | None = None
    status: RunStatus | None = None
    trigger: Trigger | None = None
    started_by: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    sort: Literal["started_at", "duration", "cost"] = "started_at"
    order: Literal["asc", "desc"] = "desc"
    limit: int = Field(default=50, ge=1, le=200)
    cursor: str | None = None

    @field_validator("since", "until")
    @classmethod
    def _utc_when_naive(cls, value: datetime | None) -> datetime | None:
        # Stored start times are aware; comparing a naive bound with them would raise TypeError.
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class RunService:
    def __init__(self, catalog: Catalog, runs: RunStore, executions: Executions) -> None:
        self.catalog = catalog
        self.runs = runs
        self.executions = executions

    # -- workflows --------------------------------------------------------------------------
    def list_workflows(self) -> list[dict[str, Any]]:
        return [self.catalog.summary(self.catalog.get(n)) for n in self.catalog.names()]

    def get_workflow(self, name: str) -> dict[str, Any]:
        return self.catalog.detail(self.catalog.get(name))

    # -- runs -------------------------------------------------------------------------------
    def start_run(
        self,
        workflow: str,
        request: StartRun,
        started_by: str,
        trigger: Trigger = Trigger.MANUAL,
    ) -> dict[str, Any]:
        definition = self.catalog.get(workflow)
        inputs = resolve_inputs(definition, request.inputs)
        run_id = (
            idempotent_run_id(workflow, request.idempotency_key) if request.idempotency_key else new_run_id()
        )
        payload = {"inputs": inputs, "trigger": trigger.value, "started_by": started_by}
        created = self.executions.start(workflow, run_id, payload)
        return {"run_id": run_id, "created": created}

    def get_run(self, run_id: str) -> dict[str, Any]:
        run, step_items, outputs = self.runs.get_run_items(run_id)
        if run is None:
            raise RunNotFound(f"no run with id {run_id!r}")
        return self.run_view(run, step_items, outputs)

    def list_runs(self, query: RunQuery) -> dict[str, Any]:
        filters = {
            k: str(v)
            for k, v in (
                ("status", query.status),
                ("trigger", query.trigger),
                ("started_by", query.started_by),
            )
            if v is not None
        }
        if query.sort != "started_at":
            return self.sorted_runs(query, filters)
        items, cursor = self.runs.query_runs(
            query.workflow, query.order == "desc", query.limit, query.cursor, filters
        )
        rows = [self.run_row(item) for item in items if self.in_window(item, query)]
        return {"runs": rows, "next_cursor": cursor}

    @staticmethod
    def in_window(item: dict[str, Any], query: RunQuery) -> bool:
        started = parse_time(item.get("started_at"))
        since, until = query.since, query.until
        return not ((since and started and started < since) or (until and started and started > until))

    def sorted_runs(self, query: RunQuery, filters: dict[str, str]) -> dict[str, Any]:
        """Sorted by cost or duration: the newest SORT_WINDOW matching runs, sorted in memory, paged.

        Bounded on purpose: an index per sort key is the history design's, not this one's.
        """
        offset = 0
        if query.cursor:
            key = decode_cursor(query.cursor)
            if set(key) != {"offset"} or not str(key["offset"].get("N", "")).isdigit():
                raise BadRequest("cursor is not one this API returned for this sort")
            offset = int(key["offset"]["N"])
        items, _ = self.runs.query_runs(query.workflow, True, SORT_WINDOW, None, filters)
        rows = [self.run_row(item) for item in items if self.in_window(item, query)]
        field = "cost_usd" if query.sort == "cost" else "duration_s"
        rows.sort(key=lambda r: float(r.get(field) or 0), reverse=query.order == "desc")
        page = rows[offset : offset + query.limit]
        more = offset + query.limit < len(rows)
        cursor = encode_cursor({"offset": {"N": str(offset + query.limit)}}) if more else None
        return {"runs": page, "next_cursor": cursor}

    # -- views ------------------------------------------------------------------------------
    @staticmethod
    def run_row(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "run_id": item.get("run_id") or item.get("pk"),
            "workflow": item.get("workflow"),
            "status": item.get("status"),
            "trigger": item.get("trigger"),
            "started_by": item.get("started_by"),
            "started_at": item.get("started_at"),
            "ended_at": item.get("ended_at"),
            "duration_s": seconds_between(item.get("started_at"), item.get("ended_at")),
            "cost_usd": item.get("cost_usd", 0),
        }

    @staticmethod
    def error_cause(run: dict[str, Any], steps: list[dict[str, Any]]) -> str | None:
        """Why the run failed: the state machine's record, else the failed step's own cause."""
        if cause := run.get("error_cause"):
            return str(cause)
        try:
            recorded = json.loads(run.get("error_json") or "{}").get("Cause")
        except (ValueError, AttributeError):
            recorded = None
        if recorded:
            return str(recorded)
        failed = [s for s in steps if s["status"] == StepStatus.FAILED]
        return failed[0]["cause"] if failed else None

    @staticmethod
    def step_view(step_id: str, kind: str, item: dict[str, Any], outputs: dict[str, Any]) -> dict[str, Any]:
        """One step as the API shows it; a step with no item yet is pending."""
        status = item.get("status", StepStatus.PENDING.value)
        attempts = sorted(
            (
                value
                for name, value in item.items()
                if name.startswith(ATTEMPT_PREFIX) and isinstance(value, dict)
            ),
            key=lambda a: a.get("attempt", 0),
        )
        if attempts and attempts[-1].get("status") == StepStatus.RUNNING and status == StepStatus.FAILED:
            # Recorded by the state machine (lost worker), which does not know the attempt number.
            attempts[-1] = attempts[-1] | {
                "status": status,
                "error": item.get("error"),
                "cause": item.get("cause"),
            }
        started, ended = item.get("started_at"), item.get("ended_at")
        return {
            "id": step_id,
            "kind": kind,
            "status": status,
            "attempt": item.get("attempt", 0),
            "started_at": started,
            "ended_at": ended,
            "duration_s": seconds_between(started, ended) if started else None,
            "error": item.get("error"),
            "cause": item.get("cause"),
            "summary": item.get("summary"),
            "exit_code": item.get("exit_code"),
            "process_seconds": item.get("process_seconds"),
            # Priced when recorded (the breakdown at /runs/{id}/costs re-prices with today's calculator).
            "cost_usd": item.get("cost_usd"),
            "usage": item.get("usage"),
            "outputs": outputs,
            "artifacts": item.get("artifacts", []),
            "artifact_warnings": item.get("artifact_warnings", []),
            "attempts": attempts,
        }

    def run_view(
        self, run: dict[str, Any], step_items: dict[str, dict[str, Any]], outputs: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        steps = [
            self.step_view(
                s["id"], s.get("kind", "run"), step_items.get(s["id"], {}), outputs.get(s["id"], {})
            )
            for s in run.get("plan", [])
        ]
        return self.run_row(run) | {
            "inputs": json.loads(run["inputs_json"]) if run.get("inputs_json") else {},
            "error": run.get("error"),
            "error_cause": self.error_cause(run, steps),
            # Why a cancelled run was cancelled (BudgetExceeded: its cost passed max_cost_usd).
            "cancel_reason": run.get("cancel_reason"),
            "execution_arn": run.get("execution_arn"),
            "steps": steps,
        }
