"""Use cases behind the REST API and CLI: start a run, read runs, list history."""

from __future__ import annotations

import hashlib
import json
import secrets
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from flowdeck.catalog import Catalog
from flowdeck.clock import seconds_between
from flowdeck.constants import ATTEMPT_PREFIX
from flowdeck.control.cancelling import CANCEL_FIELDS
from flowdeck.control.concurrency import ConcurrencyControl
from flowdeck.control.permissions import Permissions
from flowdeck.control.workflow_state import SetWorkflowState, WorkflowStates
from flowdeck.costs.models import money_text
from flowdeck.definition.inputs import resolve_inputs
from flowdeck.runs.actions import run_actions, step_actions
from flowdeck.runs.history import READ_FACTOR, decode_cursor, encode_cursor, plan_history
from flowdeck.runs.unrun import NOT_RUN, ended_status, not_run_reason, unreached
from flowdeck.status import FINISHED_RUN_STATUSES, RunStatus, StepStatus, Trigger
from flowdeck.stores.executions import Executions
from flowdeck.stores.run_lookup import load_run
from flowdeck.stores.runs import RunStore
from flowdeck.triggers.switch import TriggerSwitch


def new_run_id(now: datetime | None = None) -> str:
    """Sortable and readable: 20261121-182501-1a2b3c4d (also a valid execution name)."""
    now = now or datetime.now(UTC)
    return f"{now:%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def idempotent_run_id(workflow: str, key: str) -> str:
    """The same key always names the same execution: Step Functions refuses a second one."""
    return "idem-" + hashlib.sha256(f"{workflow}\0{key}".encode()).hexdigest()[:32]


class StartRun(BaseModel):
    """Body of POST /workflows/{wf}/runs."""

    model_config = ConfigDict(extra="forbid")
    inputs: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = Field(default=None, min_length=1, max_length=128)


class RunQuery(BaseModel):
    """Query of GET /runs."""

    model_config = ConfigDict(extra="forbid")
    # Filters are index keys: DynamoDB refuses an empty key, and one over 2,048 bytes (4 bytes a character).
    workflow: str | None = Field(default=None, min_length=1, max_length=64)
    status: RunStatus | None = None
    trigger: Trigger | None = None
    started_by: str | None = Field(default=None, min_length=1, max_length=512)
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

    @model_validator(mode="after")
    def _range_in_order(self) -> RunQuery:
        if self.since and self.until and self.since > self.until:
            raise ValueError("since is after until")
        return self


class RunService:
    def __init__(
        self, catalog: Catalog, runs: RunStore, executions: Executions, switch: TriggerSwitch | None = None
    ) -> None:
        """`switch` (AWS only) disables a paused workflow's schedules and rules; locally None."""
        self.catalog = catalog
        self.runs = runs
        self.executions = executions
        self.states = WorkflowStates(runs)
        self.switch = switch
        # Who may start, cancel, retry, skip and pause each workflow (its `permissions:`).
        self.permissions = Permissions(catalog)

    # -- workflows --------------------------------------------------------------------------
    def list_workflows(self, caller: str) -> list[dict[str, Any]]:
        names = self.catalog.names()
        states = self.states.many(names)
        return [
            self.catalog.summary(self.catalog.get(n)) | states[n] | self.workflow_actions(n, caller)
            for n in names
        ]

    def get_workflow(self, name: str, caller: str) -> dict[str, Any]:
        definition = self.catalog.get(name)
        return self.catalog.detail(definition) | self.states.get(name) | self.workflow_actions(name, caller)

    def workflow_actions(self, name: str, caller: str) -> dict[str, Any]:
        """What the caller may do to the workflow (`start`, `pause`): the page shows only these."""
        return {"actions": self.permissions.workflow_actions(name, caller)}

    def set_workflow_state(self, name: str, request: SetWorkflowState, caller: str) -> dict[str, Any]:
        """Pause or resume a workflow (idempotent); on AWS its schedules and rules follow.

        Recorded first, so every Flowdeck start path refuses from this answer on; then the schedules
        and rules are switched (a failure there answers an error, and repeating the call retries it).
        On resume, runs that queued while it was paused start, in order, as slots allow.
        """
        definition = self.catalog.get(name)
        self.permissions.check(name, "pause", caller)
        state, changed = self.states.set(name, request, caller)
        triggers = self.switch.set(definition, request.active) if self.switch is not None else []
        if request.active and definition.runtime_config.concurrency.max_runs:
            ConcurrencyControl(self.runs, self.executions).promote(name)
        return {"workflow": name, "changed": changed, "triggers": triggers} | state

    # -- runs -------------------------------------------------------------------------------
    def start_run(
        self,
        workflow: str,
        request: StartRun,
        started_by: str,
        trigger: Trigger = Trigger.MANUAL,
        run_id: str | None = None,
        extra: dict[str, Any] | None = None,
        trigger_detail: str | None = None,
    ) -> dict[str, Any]:
        """Start a run; `run_id` and `extra` (more execution input, e.g. a retry's `reuse`) for retries;
        `trigger_detail` says what started it, for history ("main @ abc1234")."""
        definition = self.catalog.get(workflow)
        if trigger is Trigger.MANUAL:
            # A person's start; triggers are authorized by their own secret or rule, retries as `retry`.
            self.permissions.check(workflow, "start", started_by)
        inputs = resolve_inputs(definition, request.inputs)
        # A paused workflow starts nothing (409 WorkflowPaused), also for a repeated idempotency key.
        self.states.check(workflow)
        run_id = run_id or (
            idempotent_run_id(workflow, request.idempotency_key) if request.idempotency_key else new_run_id()
        )
        payload = {"inputs": inputs, "trigger": trigger.value, "started_by": started_by} | (extra or {})
        if trigger_detail:
            payload["trigger_detail"] = trigger_detail
        # Within runtime_config.concurrency: started, queued (status queued) or refused (409).
        return ConcurrencyControl(self.runs, self.executions).start(definition, run_id, payload)

    def get_run(self, run_id: str, caller: str | None = None) -> dict[str, Any]:
        """The run view; with `caller`, its `actions` hints keep only what the caller may do."""
        run, step_items, outputs = load_run(self.runs, run_id)
        view = self.run_view(run, step_items, outputs)
        if caller is not None:
            workflow = str(view.get("workflow") or "")
            view["actions"] = self.permissions.hints(workflow, caller, view["actions"])
            for step in view["steps"]:
                step["actions"] = self.permissions.hints(workflow, caller, step["actions"])
        return view

    def list_runs(self, query: RunQuery) -> dict[str, Any]:
        """A page of run history: one index read, at most READ_FACTOR x limit entries (runs/history.py)."""
        plan = plan_history(
            workflow=query.workflow,
            status=query.status.value if query.status else None,
            trigger=query.trigger.value if query.trigger else None,
            started_by=query.started_by,
            since=query.since,
            until=query.until,
            sort=query.sort,
            ascending=query.order == "asc",
        )
        start = decode_cursor(plan, query.cursor) if query.cursor else None
        items, last = self.runs.read_history(plan, query.limit, start, READ_FACTOR * query.limit)
        return {
            "runs": [self.run_row(item) for item in items],
            "next_cursor": encode_cursor(plan, last) if last else None,
        }

    # -- views ------------------------------------------------------------------------------
    @staticmethod
    def run_row(item: dict[str, Any]) -> dict[str, Any]:
        return {
            "run_id": item.get("run_id") or item.get("pk"),
            "workflow": item.get("workflow"),
            "status": item.get("status"),
            "trigger": item.get("trigger"),
            # What started it beyond the trigger's kind: a git push's "main @ abc1234"; None if nothing.
            "trigger_detail": item.get("trigger_detail") or None,
            "started_by": item.get("started_by"),
            "started_at": item.get("started_at"),
            "ended_at": item.get("ended_at"),
            # A queued run has not started: its started_at is the queue time, not a start.
            "duration_s": None
            if item.get("status") == RunStatus.QUEUED
            else seconds_between(item.get("started_at"), item.get("ended_at")),
            # Money is a decimal string everywhere (flowdeck.costs.models.Money), never a float.
            "cost_usd": money_text(item.get("cost_usd")) or "0",
            # Retry links, both ways: the run this one retries, and the runs that retried this one.
            "retry_of": item.get("retry_of"),
            "retries": sorted(item.get("retries") or []),
        }

    @staticmethod
    def error_cause(run: dict[str, Any], steps: list[dict[str, Any]]) -> str | None:
        """Why the run failed: the state machine's record, else the failed step's own cause.

        A run that succeeded has none: a tolerated failure (`on_failure: continue`) stays on its step.
        """
        if run.get("status") == RunStatus.SUCCEEDED:
            return None
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
        if attempts and attempts[-1].get("status") == StepStatus.RUNNING and status in ("failed", "waiting"):
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
            # Why a step of an ended run never ran ("the run failed at deploy"); null for one that did.
            NOT_RUN: item.get(NOT_RUN),
            "exit_code": item.get("exit_code"),
            "process_seconds": item.get("process_seconds"),
            # Priced when recorded (the breakdown at /runs/{id}/costs re-prices with today's calculator).
            "cost_usd": money_text(item.get("cost_usd")),
            "usage": item.get("usage"),
            "outputs": outputs,
            "artifacts": item.get("artifacts", []),
            "artifact_warnings": item.get("artifact_warnings", []),
            "attempts": attempts,
            # A step a retry took over: the run whose result (outputs, artifacts) it shows.
            "reused_from": item.get("reused_from"),
            # Paused on failure (the error above stays): since when, until when, and who decided what.
            **RunService.pause_view(status, item),
            # An approval step: its request, approvals so far, deadline (flowdeck.approvals).
            **RunService.approval_part(item),
        }

    @staticmethod
    def approval_part(item: dict[str, Any]) -> dict[str, Any]:
        """`approval` of an approval step's view (never its token or the signed links)."""
        if not isinstance(item.get("approval"), dict):
            return {}
        from flowdeck.approvals.decisions import approval_view

        view = approval_view("", "", item)
        return {"approval": {k: v for k, v in view.items() if k not in ("run_id", "step", "decisions")}}

    @staticmethod
    def pause_view(status: str, item: dict[str, Any]) -> dict[str, Any]:
        """A paused step's wait (never its token) and the decisions people took on it."""
        view: dict[str, Any] = {"decisions": item.get("decisions", [])}
        if status == StepStatus.WAITING:
            view |= {
                "waiting_since": item.get("waiting_since"),
                "wait_deadline": item.get("wait_deadline"),
                "waited_s": seconds_between(item.get("waiting_since"), None),
                "allow_skip": bool(item.get("allow_skip")),
            }
        return view

    def run_view(
        self, run: dict[str, Any], step_items: dict[str, dict[str, Any]], outputs: dict[str, dict[str, Any]]
    ) -> dict[str, Any]:
        steps = [
            self.step_view(
                s["id"], s.get("kind", "run"), step_items.get(s["id"], {}), outputs.get(s["id"], {})
            )
            for s in run.get("plan", [])
        ]
        status = str(run.get("status") or "queued")
        if status in FINISHED_RUN_STATUSES:
            # Steps the ended run never reached: recorded so by a run-events reaction, which trails
            # the run's own record by a moment; until then the view says the same (flowdeck.runs.unrun).
            failed = [step["id"] for step in steps if step["status"] == StepStatus.FAILED]
            by_id = {step["id"]: step for step in steps}
            for step_id in unreached(by_id, {s: step["status"] for s, step in by_id.items()}):
                by_id[step_id] |= {"status": ended_status(status), NOT_RUN: not_run_reason(status, failed)}
        if status == RunStatus.CANCELLED and run.get("cancel_mode"):
            # Cancelled by a person or tool, and nothing of it runs: what never finished will not.
            for step in steps:
                if step["status"] in ("running", "waiting"):
                    step["status"] = StepStatus.CANCELLED.value
        elif run.get("cancel_requested_at"):
            # A cancel under way: the steps still running show it until their process has ended.
            for step in steps:
                if step["status"] == StepStatus.RUNNING:
                    step |= {key: run.get(key) for key in CANCEL_FIELDS}
        for step in steps:
            step["actions"] = step_actions(status, step)
        return self.run_row(run) | {
            "inputs": json.loads(run["inputs_json"]) if run.get("inputs_json") else {},
            # What a person may do now (the page shows a button only for these; STYLE §14).
            "actions": run_actions(
                status, run.get("cancel_mode") if run.get("cancel_requested_at") else None
            ),
            "error": run.get("error"),
            "error_cause": self.error_cause(run, steps),
            # A retry's plan: where it started, and the steps it took over from the run it retries.
            "retry_from": run.get("retry_from"),
            "reused": run.get("reused", []),
            # A cancel (API or budget guard, whose reason is BudgetExceeded): when it was asked for,
            # graceful, force or cleanup, who asked and why. The run keeps its status until its last
            # process has ended, then reads cancelled.
            **{key: run.get(key) for key in CANCEL_FIELDS},
            # A second press turned a graceful cancel into a forced one: when, and who.
            "cancel_escalated_at": run.get("cancel_escalated_at"),
            "cancel_escalated_by": run.get("cancel_escalated_by"),
            # Cancel with cleanup: pending, running, succeeded or failed, and each step's cleanup.
            "cleanup_status": run.get("cleanup_status"),
            "cleanup": run.get("cleanup", []),
            "cleanup_error": run.get("cleanup_error"),
            "execution_arn": run.get("execution_arn"),
            # Set when the workflow's concurrency limit queued the run (runtime_config.concurrency).
            "queued_at": run.get("queued_at"),
            "steps": steps,
        }
