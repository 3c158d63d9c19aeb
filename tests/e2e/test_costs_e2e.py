"""Costs on the local stack: the agent workflow's usage, priced by the rate card and by NullCalculator."""

from __future__ import annotations

from decimal import Decimal

import httpx

from flowdeck import aws
from flowdeck.config import get_settings
from flowdeck.costs.calculator import NullCalculator
from flowdeck.runs.costs import CostService
from flowdeck.stores.runs import RunStore
from tests.e2e.conftest import start, wait

SONNET = {"model": "claude-sonnet-4", "input_tokens": 73_000, "output_tokens": 6_200}
MINI = {"model": "gpt-4o-mini", "input_tokens": 21_000, "output_tokens": 1_400}


def test_agent_run_costs_break_down_by_model_and_compute(api: httpx.Client) -> None:
    run_id = start(api, "agent-review")
    run = wait(api, run_id)
    assert run["status"] == "succeeded", run

    response = api.get(f"/runs/{run_id}/costs")

    assert response.status_code == 200, response.text
    costs = response.json()
    assert costs["calculator"] == "rate-card"
    tokens = {
        m["model"]: {k: m[k] for k in ("model", "input_tokens", "output_tokens")} for m in costs["by_model"]
    }
    assert tokens == {"claude-sonnet-4": SONNET, "gpt-4o-mini": MINI}
    by_model = {m["model"]: Decimal(m["cost_usd"]) for m in costs["by_model"]}
    # List prices: sonnet $3 / $15, mini $0.15 / $0.60 per million tokens.
    assert by_model == {"claude-sonnet-4": Decimal("0.312000"), "gpt-4o-mini": Decimal("0.003990")}
    classes = {c["resource_class"] for c in costs["by_compute"]}
    assert classes == {"0.25 vCPU / 0.5 GB (pool)", "1 vCPU / 2 GB (pool)"}
    assert all(c["seconds"] > 0 and Decimal(c["cost_usd"]) > 0 for c in costs["by_compute"])
    assert [s["step"] for s in costs["steps"]] == ["triage", "review", "summarise"]
    total = Decimal(costs["total_usd"])
    assert total > Decimal("0.315")
    # The run's running total (deltas added by the workers) agrees with the re-priced breakdown.
    assert abs(Decimal(str(run["cost_usd"])) - total) < Decimal("0.00001")
    assert all(step["cost_usd"] is not None for step in run["steps"])


def test_null_calculator_prices_the_same_usage_at_zero(api: httpx.Client) -> None:
    run_id = start(api, "agent-review")
    assert wait(api, run_id)["status"] == "succeeded"
    settings = get_settings()
    service = CostService(
        RunStore(settings.runs_table, aws.client("dynamodb", settings)), NullCalculator(), settings.region
    )

    costs = service.run_costs(run_id).model_dump(mode="json")

    assert costs["calculator"] == "null"
    assert costs["total_usd"] == "0.000000"
    assert {m["model"]: (m["input_tokens"], m["output_tokens"]) for m in costs["by_model"]} == {
        "claude-sonnet-4": (73_000, 6_200),
        "gpt-4o-mini": (21_000, 1_400),
    }
    assert all(c["seconds"] > 0 and c["cost_usd"] == "0.000000" for c in costs["by_compute"])


def test_runs_sort_by_cost_puts_the_costliest_first(api: httpx.Client) -> None:
    cheap, dear = start(api, "agent-review", scale=1), start(api, "agent-review", scale=5)
    wait(api, cheap), wait(api, dear)

    response = api.get("/runs", params={"workflow": "agent-review", "sort": "cost", "limit": 200})

    assert response.status_code == 200, response.text
    ids = [r["run_id"] for r in response.json()["runs"]]
    assert ids.index(dear) < ids.index(cheap)
    # Money is a decimal string: compared as decimals, not as text.
    costs = [Decimal(r["cost_usd"]) for r in response.json()["runs"]]
    assert costs == sorted(costs, reverse=True)
