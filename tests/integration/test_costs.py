"""Costs against moto: the worker's real-time usage flush, the cost endpoints, sorting runs by cost."""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from flowdeck.config import Settings
from flowdeck.messages import StepMessage
from flowdeck.runner import usage as usage_module
from flowdeck.runner.step_runner import StepRunner
from flowdeck.stores.runs import RunStore
from tests.integration.test_api import TABLE, Api, assert_error
from tests.integration.test_worker import RUN_ID, FakeStepFunctions, Lines, message

WRITE_USAGE = (
    "import json, os, sys, time\n"
    "def note(model, i, o):\n"
    "    with open(os.environ['FLOWDECK_USAGE'], 'a') as f: f.write(json.dumps("
    "{'model': model, 'input_tokens': i, 'output_tokens': o}) + '\\n')\n"
    "note('claude-sonnet-4', 1000, 100)\n"
    "time.sleep(0.6)\n"
    "with open(os.environ['FLOWDECK_USAGE'], 'a') as f: f.write('oops\\n')\n"
    "note('gpt-4o-mini', 2000, 200)\n"
    "time.sleep(float(sys.argv[1]))\n"
)


class RecordingBudget:
    """Keeps every total it is told, and what the store held then; stops the step above `limit`."""

    def __init__(self, store: RunStore, limit: Decimal | None = None) -> None:
        self.store = store
        self.limit = limit
        self.totals: list[Decimal] = []
        self.step_seen: list[dict[str, Any]] = []

    def after_usage(self, message: StepMessage, run_total_usd: Decimal, stop: threading.Event) -> None:
        self.totals.append(run_total_usd)
        self.step_seen.append(self.store.get_run_items(message.run_id)[1][message.step])
        if self.limit is not None and run_total_usd > self.limit:
            stop.set()


@pytest.fixture
def store(runs_ddb: Any) -> RunStore:
    store = RunStore(TABLE, runs_ddb)
    runs_ddb.put_item(
        TableName=TABLE, Item={"pk": {"S": RUN_ID}, "sk": {"S": "RUN"}, "status": {"S": "running"}}
    )
    return store


@pytest.fixture(autouse=True)
def fast_flush(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(usage_module, "READ_EVERY_SECONDS", 0.05)
    monkeypatch.setattr(usage_module, "FLUSH_EVERY_SECONDS", 0.1)


def make_runner(store: RunStore, tmp_path: Path, budget: RecordingBudget) -> Iterator[StepRunner]:
    (tmp_path / "workspace").mkdir()
    settings = Settings(runs_table=TABLE, scratch_dir=tmp_path / "scratch", workspace=tmp_path / "workspace")
    runner = StepRunner(settings, store, FakeStepFunctions(), budget=budget)
    yield runner
    runner.io.shutdown(wait=True)


def run_item(store: RunStore) -> dict[str, Any]:
    run = store.get_run_items(RUN_ID)[0]
    assert run is not None
    return run


def test_usage_is_flushed_while_the_step_runs_and_added_once_to_the_run(store, tmp_path):
    budget = RecordingBudget(store)
    runner = next(make_runner(store, tmp_path, budget))
    lines = Lines()
    step = message(command=[sys.executable, "-c", WRITE_USAGE, "0.6"], resources={"cpu": 512, "memory": 1024})

    result = runner.handle(step, lines)

    assert result is not None and result.status == "succeeded"
    # Seen while running: the first model's tokens were on the step item before the step ended.
    running = [s for s in budget.step_seen if s["status"] == "running"]
    assert running and running[0]["usage"]["models"][0]["model"] == "claude-sonnet-4"
    assert budget.totals == sorted(budget.totals) and len(budget.totals) >= 2
    record = store.get_run_items(RUN_ID)[1]["build"]
    assert {m["model"]: m["input_tokens"] for m in record["usage"]["models"]} == {
        "claude-sonnet-4": 1000,
        "gpt-4o-mini": 2000,
    }
    assert record["usage"]["compute"]["vcpu"] == 0.5 and record["usage"]["compute"]["seconds"] > 1
    assert record["attempt#1"]["usage"] == record["usage"]
    # The run's totals are the sum of the deltas: exactly the step's final figures, once.
    run = run_item(store)
    assert Decimal(str(run["cost_usd"])) == Decimal(record["cost_usd"]) == budget.totals[-1]
    assert (run["tokens_in#claude-sonnet-4"], run["tokens_out#gpt-4o-mini"]) == (1000, 200)
    assert ("stderr", "flowdeck: usage line 2 skipped: not JSON") in lines.lines


def test_the_budget_guard_can_stop_the_step_after_a_flush(store, tmp_path):
    budget = RecordingBudget(store, limit=Decimal("0.001"))
    runner = next(make_runner(store, tmp_path, budget))

    result = runner.handle(message(command=[sys.executable, "-c", WRITE_USAGE, "30"]), Lines())

    assert result is not None and result.status == "cancelled"
    assert result.process_seconds < 20
    assert budget.totals[-1] > Decimal("0.001")


# -- the API ------------------------------------------------------------------------------------
def usage(seconds: float, *models: tuple[str, int, int], vcpu: float = 0.25) -> dict[str, Any]:
    """A step's stored usage (numbers as Decimal, as DynamoDB wants them)."""
    value = {
        "compute": {
            "seconds": seconds,
            "vcpu": vcpu,
            "memory_gb": vcpu * 2,
            "mode": "pool",
            "architecture": "x86_64",
        },
        "models": [{"model": m, "input_tokens": i, "output_tokens": o} for m, i, o in models],
    }
    return dict(json.loads(json.dumps(value), parse_float=Decimal))


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    return Api(*flowdeck_aws, lambda_context)


def test_run_costs_breaks_down_by_model_compute_and_step_across_attempts(api):
    api.seed_run("r1", "deploy", "2026-11-21T10:00:00+00:00", plan=[{"id": "plan"}, {"id": "apply"}])
    first = usage(3600, ("claude-sonnet-4", 1_000_000, 0))
    api.seed_step(
        "r1",
        "plan",
        attempt=2,
        usage=usage(1800, ("claude-sonnet-4", 0, 1_000_000)),
        **{"attempt#1": {"attempt": 1, "usage": first}},
    )
    api.seed_step("r1", "apply", attempt=1, usage=usage(60, ("gpt-4o-mini", 1_000_000, 0), vcpu=1))

    status, body = api.call("GET", "/runs/r1/costs")

    assert status == 200, body
    assert body["calculator"] == "rate-card" and body["currency"] == "USD"
    assert {m["model"]: (m["input_tokens"], m["output_tokens"], m["cost_usd"]) for m in body["by_model"]} == {
        "claude-sonnet-4": (1_000_000, 1_000_000, "18.000000"),
        "gpt-4o-mini": (1_000_000, 0, "0.150000"),
    }
    compute = {c["resource_class"]: (c["seconds"], c["cost_usd"]) for c in body["by_compute"]}
    # 1.5 h of 0.25 vCPU + 0.5 GB; 1 min of 1 vCPU + 2 GB (us-east-1 x86_64 list prices).
    assert compute == {
        "0.25 vCPU / 0.5 GB (pool)": (5400, "0.018514"),
        "1 vCPU / 2 GB (pool)": (60, "0.000823"),
    }
    assert [s["step"] for s in body["steps"]] == ["plan", "apply"]
    assert body["total_usd"] == "18.169337"


def test_run_costs_of_an_unknown_run_is_404(api):
    assert_error(api.call("GET", "/runs/nope/costs"), 404, "RunNotFound")


def test_workflow_costs_flags_the_injected_regression(api):
    costs = [50, 52, 49, 51, 50, 53, 48, 140, 51, 50]  # thousands of input tokens of claude-sonnet-4
    for n, thousands in enumerate(costs):
        run_id = f"r{n:02d}"
        api.seed_run(
            run_id,
            "deploy",
            f"2026-11-21T10:{n:02d}:00+00:00",
            ended_at=f"2026-11-21T10:{n:02d}:30+00:00",
            plan=[{"id": "plan"}, {"id": "review"}],
        )
        api.seed_step(run_id, "plan", attempt=1, usage=usage(0, ("claude-sonnet-4", 10_000, 0)))
        api.seed_step(run_id, "review", attempt=1, usage=usage(0, ("claude-sonnet-4", thousands * 1000, 0)))

    status, body = api.call("GET", "/workflows/deploy/costs", query={"last": "10"})

    assert status == 200, body
    assert [r["run_id"] for r in body["runs"]] == [f"r{n:02d}" for n in range(10)]
    assert [r["regression"] for r in body["runs"]] == [n == 7 for n in range(10)]
    assert body["runs"][7]["grew_most"] == "review"
    assert body["runs"][7]["cost_usd"] == "0.450000" and body["runs"][7]["duration_s"] == 30
    assert body["baseline"]["median_usd"] == "0.181500"


def test_runs_sort_by_cost_and_duration_page_through_their_indexes(api):
    for n, (cost, seconds) in enumerate([(0.5, 10), (2.0, 5), (1.0, 30)]):
        api.seed_run(
            f"s{n}",
            "deploy",
            f"2026-11-21T11:0{n}:00+00:00",
            ended_at=f"2026-11-21T11:0{n}:{seconds:02d}+00:00",
            # As the usage ADDs (cost_usd and its index copy) and the duration reaction leave them.
            cost_usd=Decimal(str(cost)),
            run_cost_usd=Decimal(str(cost)),
            duration_ms=seconds * 1000,
        )

    status, page = api.call("GET", "/runs", query={"sort": "cost", "limit": "2"})
    _, rest = api.call("GET", "/runs", query={"sort": "cost", "limit": "2", "cursor": page["next_cursor"]})
    _, by_duration = api.call("GET", "/runs", query={"sort": "duration", "order": "asc"})

    assert status == 200, page
    assert [r["run_id"] for r in page["runs"] + rest["runs"]] == ["s1", "s2", "s0"]
    assert rest["next_cursor"] is None
    assert [r["run_id"] for r in by_duration["runs"]] == ["s1", "s0", "s2"]
