"""Run history against moto: every filter combination against a brute-force filter, paging, bounded reads."""

from __future__ import annotations

import copy
import json
import random
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer
from pydantic import ValidationError

from flowdeck.clock import duration_ms
from flowdeck.definition import parse_workflow
from flowdeck.errors import BadRequest
from flowdeck.runs.events import record_duration
from flowdeck.runs.history import READ_FACTOR, encode_cursor, plan_history
from flowdeck.runs.service import RunQuery, RunService
from flowdeck.stores.runs import RunStore, from_item
from flowdeck.stores.schema import (
    BY_COST_INDEX,
    BY_STATUS_INDEX,
    BY_USER_INDEX,
    BY_WORKFLOW_COST_INDEX,
    BY_WORKFLOW_STATUS_INDEX,
    workflow_status,
)
from lambdas.api import lambda_handler
from statemachines import compile_workflow

TABLE = "flowdeck-runs-test"  # as in conftest.py
WORKFLOWS = ["hello", "deploy", "nightly", "agent"]
STATUSES = ["queued", "running", "waiting", "succeeded", "failed", "cancelled", "timed_out"]
TRIGGERS = ["manual", "schedule", "webhook", "git", "event"]
USERS = ["alice", "bob", "carol", "dave", "erin", "frank"]
START = datetime(2026, 11, 1, tzinfo=UTC)
EVENT_TEMPLATE = json.loads(
    (Path(__file__).parent.parent / "events" / "apigw_rest_start_run.json").read_text()
)


def seed_runs(ddb: Any, count: int, seed: int = 7) -> list[dict[str, Any]]:
    """`count` run items as the state machine, workers and the duration reaction leave them, a step each."""
    rng = random.Random(seed)  # noqa: S311 - test data, not secrets
    serializer = TypeSerializer()
    runs, requests = [], []
    for n in range(count):
        workflow, status = rng.choice(WORKFLOWS), rng.choice(STATUSES)
        started = START + timedelta(seconds=n * 3000 + rng.randint(0, 2000), milliseconds=rng.randint(0, 999))
        started_at = started.isoformat(timespec="milliseconds").replace("+00:00", "Z")
        cost = Decimal(rng.randint(0, 5000)) / 1000
        run = {
            "pk": f"run-{n:04d}",
            "sk": "RUN",
            "kind": "run",
            "run_id": f"run-{n:04d}",
            "workflow": workflow,
            "status": status,
            "workflow_status": workflow_status(workflow, status),
            "trigger": rng.choice(TRIGGERS),
            "started_by": rng.choice(USERS),
            "started_at": started_at,
            "run_started_at": started_at,
            "cost_usd": cost,
            "run_cost_usd": cost,
            "inputs_json": "{}",
            "plan": [{"id": "a", "kind": "run"}],
        }
        if status in {"succeeded", "failed", "cancelled", "timed_out"}:
            ended = started + timedelta(seconds=rng.randint(1, 3600))
            run["ended_at"] = ended.isoformat().replace("+00:00", "Z")
            run["duration_ms"] = duration_ms(run["started_at"], run["ended_at"])
        runs.append(run)
        # A step of the run carries status, started_at and a cost string: it must stay out of the history.
        step = {
            "pk": run["pk"],
            "sk": "STEP#a",
            "status": status,
            "started_at": started_at,
            "cost_usd": "0.1",
        }
        for item in (run, step):
            requests.append({"PutRequest": {"Item": {k: serializer.serialize(v) for k, v in item.items()}}})
    for first in range(0, len(requests), 25):
        ddb.batch_write_item(RequestItems={TABLE: requests[first : first + 25]})
    return runs


class ReadCounter:
    """Sums ScannedCount and Count of every Query the client makes (what a page read)."""

    def __init__(self, ddb: Any) -> None:
        self.scanned = self.returned = self.queries = 0
        ddb.meta.events.register("after-call.dynamodb.Query", self._count)

    def _count(self, parsed: dict[str, Any], **_: Any) -> None:
        self.scanned += parsed.get("ScannedCount", 0)
        self.returned += parsed.get("Count", 0)
        self.queries += 1

    def reset(self) -> None:
        self.scanned = self.returned = self.queries = 0


@pytest.fixture
def seeded(runs_ddb: Any) -> Iterator[tuple[RunService, list[dict[str, Any]], ReadCounter]]:
    runs = seed_runs(runs_ddb, 300)
    service = RunService(catalog=None, runs=RunStore(TABLE, runs_ddb), executions=None)  # type: ignore[arg-type]
    yield service, runs, ReadCounter(runs_ddb)


def all_pages(service: RunService, counter: ReadCounter, **query: Any) -> list[dict[str, Any]]:
    """Every row of a query, page by page, checking each page's read bound."""
    rows: list[dict[str, Any]] = []
    cursor = None
    for _ in range(500):
        counter.reset()
        page = service.list_runs(RunQuery(**query, cursor=cursor))
        limit = query.get("limit", 50)
        assert len(page["runs"]) <= limit
        assert counter.scanned <= READ_FACTOR * limit
        rows += page["runs"]
        cursor = page["next_cursor"]
        if cursor is None:
            return rows
    raise AssertionError("paging did not end")


def brute_force(runs: list[dict[str, Any]], **query: Any) -> list[dict[str, Any]]:
    def parse(value: str) -> datetime:
        return datetime.fromisoformat(value.replace("Z", "+00:00"))

    kept = [
        r
        for r in runs
        if all(
            r[name] == query[name]
            for name in ("workflow", "status", "trigger", "started_by")
            if name in query
        )
        and ("since" not in query or parse(r["started_at"]) >= query["since"])
        and ("until" not in query or parse(r["started_at"]) <= query["until"])
        and (query.get("sort") != "duration" or "duration_ms" in r)
    ]
    return sorted(kept, key=lambda r: r["started_at"], reverse=query.get("order", "desc") == "desc")


SINCE = START + timedelta(days=3, hours=5, minutes=7, seconds=11, milliseconds=500)
UNTIL = START + timedelta(days=7, hours=2)
COMBINATIONS = [
    {},
    {"workflow": "deploy"},
    {"status": "failed"},
    {"trigger": "git"},
    {"started_by": "carol"},
    {"since": SINCE},
    {"until": UNTIL},
    {"since": SINCE, "until": UNTIL},
    {"workflow": "deploy", "status": "succeeded"},
    {"status": "running", "since": SINCE, "until": UNTIL},
    {"workflow": "nightly", "trigger": "schedule"},
    {"trigger": "manual", "started_by": "bob"},
    {"workflow": "agent", "status": "failed", "since": SINCE},
    {"workflow": "hello", "started_by": "erin", "until": UNTIL},
    {"status": "cancelled", "trigger": "webhook", "started_by": "alice"},
    {"workflow": "deploy", "status": "failed", "trigger": "manual", "started_by": "dave", "since": SINCE},
    {"order": "asc"},
    {"status": "waiting", "order": "asc", "since": SINCE},
]


@pytest.mark.parametrize("query", COMBINATIONS, ids=lambda q: "+".join(q) or "none")
@pytest.mark.parametrize("limit", [7, 50])
def test_every_filter_combination_pages_to_the_brute_force_answer(
    seeded: Any, query: dict[str, Any], limit: int
):
    service, runs, counter = seeded

    rows = all_pages(service, counter, **query, limit=limit)

    assert [r["run_id"] for r in rows] == [r["run_id"] for r in brute_force(runs, **query)]


@pytest.mark.parametrize(
    "query",
    [
        {"sort": "cost"},
        {"sort": "cost", "order": "asc"},
        {"sort": "cost", "workflow": "deploy"},
        {"sort": "cost", "status": "failed", "since": SINCE},
        {"sort": "duration"},
        {"sort": "duration", "order": "asc", "workflow": "hello"},
        {"sort": "duration", "trigger": "git", "until": UNTIL},
    ],
    ids=lambda q: "+".join(f"{k}={v}" for k, v in q.items() if k in {"sort", "order"}) + "+" + "+".join(q),
)
def test_sorted_by_cost_or_duration_lists_every_match_in_order(seeded: Any, query: dict[str, Any]):
    service, runs, counter = seeded
    field = "cost_usd" if query["sort"] == "cost" else "duration_s"

    rows = all_pages(service, counter, **query, limit=20)

    assert sorted(r["run_id"] for r in rows) == sorted(r["run_id"] for r in brute_force(runs, **query))
    values = [float(r[field]) for r in rows]
    assert values == sorted(values, reverse=query.get("order", "desc") == "desc")


@pytest.mark.parametrize(
    "query",
    [
        {"workflow": "deploy"},
        {"status": "failed"},
        {"trigger": "git"},
        {"started_by": "carol"},
        {"workflow": "deploy", "status": "succeeded"},
        {"status": "succeeded", "since": SINCE.replace(microsecond=0), "until": UNTIL},
        {"sort": "cost", "workflow": "agent"},
    ],
    ids=lambda q: "+".join(q),
)
def test_indexed_filters_read_only_the_runs_they_return(seeded: Any, query: dict[str, Any]):
    service, _, counter = seeded

    page = service.list_runs(RunQuery(**query, limit=5))

    assert len(page["runs"]) == 5
    assert counter.scanned == 5


def test_a_combination_without_its_own_index_returns_a_short_page_within_the_read_bound(seeded: Any):
    service, runs, counter = seeded
    # Three filters besides the user's: most of carol's runs are read and left out.
    query = {"started_by": "carol", "trigger": "event", "status": "timed_out"}

    page = service.list_runs(RunQuery(**query, limit=2))

    assert counter.scanned <= READ_FACTOR * 2
    assert len(page["runs"]) < 2
    assert page["next_cursor"] is not None
    assert [r["run_id"] for r in all_pages(service, counter, **query, limit=2)] == [
        r["run_id"] for r in brute_force(runs, **query)
    ]


@pytest.mark.parametrize(
    ("query", "index"),
    [
        ({}, "by-started"),
        ({"workflow": "a", "status": "failed", "started_by": "u"}, BY_WORKFLOW_STATUS_INDEX),
        ({"workflow": "a", "started_by": "u", "trigger": "git"}, BY_USER_INDEX),
        ({"status": "failed", "trigger": "git"}, BY_STATUS_INDEX),
        ({"sort": "cost", "status": "failed"}, BY_COST_INDEX),
        ({"sort": "cost", "workflow": "a", "status": "failed"}, BY_WORKFLOW_COST_INDEX),
    ],
)
def test_the_planner_keys_on_the_most_selective_filter(query: dict[str, str], index: str):
    plan = plan_history(**query)

    assert plan.index == index
    assert plan.partition_key not in dict(plan.filters)


def test_steps_stay_out_of_the_history(seeded: Any):
    service, runs, counter = seeded

    rows = all_pages(service, counter, status="failed", limit=50)

    assert rows and all(r["run_id"] and r["workflow"] for r in rows)
    assert len(rows) == len([r for r in runs if r["status"] == "failed"])


# -- cursors and bad queries --------------------------------------------------------------------
def test_a_cursor_only_continues_its_own_query(seeded: Any):
    service, _, _ = seeded
    cursor = service.list_runs(RunQuery(status="failed", limit=3))["next_cursor"]

    for other in ({"status": "running"}, {"status": "failed", "order": "asc"}, {"workflow": "deploy"}):
        with pytest.raises(BadRequest, match="another query"):
            service.list_runs(RunQuery(**other, limit=3, cursor=cursor))


def api_get(query: dict[str, str], context: Any) -> tuple[int, dict[str, Any]]:
    event = copy.deepcopy(EVENT_TEMPLATE)
    event.update(
        httpMethod="GET",
        path="/runs",
        body=None,
        queryStringParameters=query,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()},
        pathParameters={"proxy": "runs"},
    )
    event["requestContext"].update(httpMethod="GET", path="/runs")
    answer = lambda_handler(event, context)
    return answer["statusCode"], json.loads(answer["body"])


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ({"limit": "0"}, 422, "ValidationError"),
        ({"limit": "201"}, 422, "ValidationError"),
        ({"sort": "name"}, 422, "ValidationError"),
        ({"since": "2026-11-05T00:00:00Z", "until": "2026-11-04T00:00:00Z"}, 422, "ValidationError"),
        ({"cursor": "%%%"}, 400, "BadRequest"),
        ({"cursor": "eyJ2IjoxLCJxIjoieCIsImsiOnt9fQ=="}, 400, "BadRequest"),  # {"v":1,"q":"x","k":{}}
    ],
)
def test_bad_history_queries_are_refused_through_the_api(
    flowdeck_aws: Any, lambda_context: Any, query: dict[str, str], status: int, code: str
):
    got, body = api_get(query, lambda_context)

    assert (got, body["error"]) == (status, code), body


def test_a_cursor_of_another_query_is_400_through_the_api(flowdeck_aws: Any, lambda_context: Any):
    ddb, _ = flowdeck_aws
    seed_runs(ddb, 20)
    _, first = api_get({"status": "failed", "limit": "1"}, lambda_context)
    assert first["next_cursor"]

    got, body = api_get({"status": "running", "limit": "1", "cursor": first["next_cursor"]}, lambda_context)

    assert (got, body["error"]) == (400, "BadRequest")


@pytest.mark.parametrize(
    "key",
    [
        {"pk": {"S": "r"}, "sk": {"S": "RUN"}, "status": {"S": "running"}, "run_started_at": {"S": "2026"}},
        {"pk": {"S": "r"}, "sk": {"S": "RUN"}, "status": {"S": "failed"}, "run_started_at": {"N": "1"}},
        {"pk": {"S": "r"}, "sk": {"S": "RUN"}, "status": {"S": "failed"}},
        {
            "pk": {"S": "r"},
            "sk": {"S": "RUN"},
            "status": {"S": "failed"},
            "run_started_at": {"S": "2025-01-01"},
        },
    ],
    ids=["other-partition", "wrong-type", "missing-key", "outside-range"],
)
def test_a_forged_cursor_with_the_right_fingerprint_is_still_refused(seeded: Any, key: dict[str, Any]):
    service, _, _ = seeded
    query = {"status": "failed", "since": SINCE}
    plan = plan_history(status="failed", since=RunQuery(**query).since)

    with pytest.raises(BadRequest):
        service.list_runs(RunQuery(**query, cursor=encode_cursor(plan, key)))


def test_limit_bounds_are_validated():
    with pytest.raises(ValidationError):
        RunQuery(limit=201)


# -- durations -----------------------------------------------------------------------------------
def run_item(ddb: Any, run_id: str) -> dict[str, Any]:
    return from_item(ddb.get_item(TableName=TABLE, Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}})["Item"])


def test_the_duration_is_set_once_a_run_ended_and_redelivery_changes_nothing(runs_ddb: Any):
    store = RunStore(TABLE, runs_ddb)
    react = record_duration(store)
    started = {
        "pk": "r1",
        "sk": "RUN",
        "kind": "run",
        "status": "running",
        "started_at": "2026-11-21T10:00:00Z",
    }
    ended = started | {"status": "succeeded", "ended_at": "2026-11-21T10:01:02.500Z"}
    runs_ddb.put_item(TableName=TABLE, Item={k: TypeSerializer().serialize(v) for k, v in ended.items()})
    counter = []
    runs_ddb.meta.events.register("after-call.dynamodb.UpdateItem", lambda **_: counter.append(1))

    react(None, started)  # still running: nothing to record
    react(started, ended)
    react(started, run_item(runs_ddb, "r1"))  # the change the write itself caused
    react(started, ended)  # a redelivery, stale image: the condition holds, same value

    assert run_item(runs_ddb, "r1")["duration_ms"] == 62500
    assert len(counter) == 2


def test_a_stale_end_never_overwrites_the_recorded_duration(runs_ddb: Any):
    store = RunStore(TABLE, runs_ddb)
    item = {
        "pk": "r1",
        "sk": "RUN",
        "status": "failed",
        "started_at": "2026-11-21T10:00:00Z",
        "ended_at": "2026-11-21T10:00:05Z",
    }
    runs_ddb.put_item(TableName=TABLE, Item={k: TypeSerializer().serialize(v) for k, v in item.items()})

    record_duration(store)(None, item | {"ended_at": "2026-11-21T10:00:09Z"})
    record_duration(store)(None, item)

    assert run_item(runs_ddb, "r1")["duration_ms"] == 5000


# -- what the writers leave for the indexes --------------------------------------------------------
def record_run_start(ddb: Any, run_id: str, entered: str) -> None:
    """The compiled RecordRunStart, its JSONPath values resolved as the state machine would."""
    asl = compile_workflow(parse_workflow("name: x\nsteps: [{id: a, run: echo}]\n", "x.yaml"))
    params = asl["States"]["RecordRunStart"]["Parameters"]
    context = {"$$.Execution.Name": run_id, "$$.State.EnteredTime": entered}
    resolved = json.loads(
        json.dumps(params), object_hook=lambda d: {"S": context.get(d["S.$"], "manual")} if "S.$" in d else d
    )
    ddb.update_item(**(resolved | {"TableName": TABLE}))


def test_every_started_run_is_in_the_cost_and_status_indexes_and_usage_moves_it(runs_ddb: Any):
    store = RunStore(TABLE, runs_ddb)
    service = RunService(catalog=None, runs=store, executions=None)  # type: ignore[arg-type]
    record_run_start(runs_ddb, "r1", "2026-11-21T10:00:00.000Z")
    record_run_start(runs_ddb, "r2", "2026-11-21T10:00:01.000Z")

    store.add_run_usage("r2", Decimal("0.25"), {})
    record_run_start(runs_ddb, "r2", "2026-11-21T10:00:01.000Z")  # a retried state: the cost stays

    by_cost = service.list_runs(RunQuery(sort="cost"))["runs"]
    assert [(r["run_id"], r["cost_usd"]) for r in by_cost] == [("r2", "0.25"), ("r1", "0")]
    assert [r["run_id"] for r in service.list_runs(RunQuery(status="running"))["runs"]] == ["r2", "r1"]
    assert run_item(runs_ddb, "r2")["run_cost_usd"] == 0.25
