"""Cost use cases: a run's breakdown and a workflow's trend, priced now with the configured calculator.

Usage is stored (per step attempt); prices are not trusted from storage, so switching calculators
re-prices history faithfully.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from flowdeck.clock import seconds_between
from flowdeck.constants import ATTEMPT_PREFIX
from flowdeck.costs.calculator import CostCalculator
from flowdeck.costs.models import (
    Baseline,
    ComputeCost,
    ModelCost,
    RunCosts,
    StepCost,
    StepUsage,
    TrendRun,
    WorkflowCosts,
    add_models,
    money,
)
from flowdeck.costs.trend import RunCostRecord, baseline, flag_regressions
from flowdeck.runs.history import plan_history
from flowdeck.stores.run_lookup import load_run
from flowdeck.stores.runs import RunStore

MAX_TREND_RUNS = 100


def step_usages(item: dict[str, Any]) -> list[StepUsage]:
    """Every attempt's usage of one step item; the running attempt's from the step's own fields."""
    by_attempt: dict[int, StepUsage] = {}
    for name, value in item.items():
        usage = StepUsage.from_stored(value.get("usage")) if isinstance(value, dict) else None
        if name.startswith(ATTEMPT_PREFIX) and usage is not None:
            by_attempt[int(value.get("attempt", 0))] = usage
    current = int(item.get("attempt", 0))
    if current not in by_attempt and (usage := StepUsage.from_stored(item.get("usage"))) is not None:
        by_attempt[current] = usage
    return [by_attempt[n] for n in sorted(by_attempt)]


class CostService:
    def __init__(self, runs: RunStore, calculator: CostCalculator, region: str) -> None:
        self.runs = runs
        self.calculator = calculator
        self.region = region

    def run_costs(self, run_id: str) -> RunCosts:
        run, step_items, _ = load_run(self.runs, run_id)
        return self.price_run(run_id, run, step_items)

    def price_run(self, run_id: str, run: dict[str, Any], step_items: dict[str, dict[str, Any]]) -> RunCosts:
        planned = [s["id"] for s in run.get("plan", []) if isinstance(s, dict) and "id" in s]
        order = planned + sorted(set(step_items) - set(planned))
        models: dict[str, ModelCost] = {}
        compute: dict[str, ComputeCost] = {}
        steps = []
        for step_id in order:
            usages = step_usages(step_items.get(step_id, {}))
            if not usages:
                continue
            step_total, seconds, step_models = Decimal(0), 0.0, []
            for usage in usages:
                compute_cost = self.calculator.compute_cost(usage.compute, self.region)
                step_total += compute_cost
                seconds += usage.compute.seconds
                slot = compute.setdefault(
                    usage.compute.resource_class,
                    ComputeCost(resource_class=usage.compute.resource_class, seconds=0, cost_usd=Decimal(0)),
                )
                slot.seconds = round(slot.seconds + usage.compute.seconds, 3)
                slot.cost_usd += compute_cost
            for model in add_models([m for usage in usages for m in usage.models]):
                cost = self.calculator.model_cost(model)
                step_total += cost
                step_models.append(ModelCost(**model.model_dump(), cost_usd=money(cost)))
                seen = models.setdefault(
                    model.model, ModelCost(model=model.model, input_tokens=0, output_tokens=0, cost_usd=0)
                )
                seen.input_tokens += model.input_tokens
                seen.output_tokens += model.output_tokens
                seen.cost_usd += cost
            steps.append(
                StepCost(
                    step=step_id,
                    cost_usd=money(step_total),
                    compute_seconds=round(seconds, 3),
                    resource_class=usages[-1].compute.resource_class,
                    models=step_models,
                )
            )
        # Rounded once, at the end, so the parts add up to what unrounded arithmetic gives.
        total = sum((m.cost_usd for m in models.values()), Decimal(0)) + sum(
            (c.cost_usd for c in compute.values()), Decimal(0)
        )
        for model_part in models.values():
            model_part.cost_usd = money(model_part.cost_usd)
        for compute_part in compute.values():
            compute_part.cost_usd = money(compute_part.cost_usd)
        return RunCosts(
            run_id=run_id,
            calculator=self.calculator.name,
            total_usd=money(total),
            by_model=list(models.values()),
            by_compute=list(compute.values()),
            steps=steps,
        )

    def workflow_costs(self, workflow: str, last: int) -> WorkflowCosts:
        """The last `last` runs, oldest first, each flagged when above the robust baseline before it."""
        count = min(last, MAX_TREND_RUNS)
        items, _ = self.runs.read_history(plan_history(workflow=workflow), count, None, count)
        records, rows = [], []
        for item in reversed(items):
            run_id = str(item.get("run_id") or item.get("pk"))
            run, step_items, _ = self.runs.get_run_items(run_id)
            costs = self.price_run(run_id, run or item, step_items)
            records.append(RunCostRecord(run_id, costs.total_usd, {s.step: s.cost_usd for s in costs.steps}))
            rows.append(
                TrendRun(
                    run_id=run_id,
                    started_at=item.get("started_at"),
                    duration_s=seconds_between(item.get("started_at"), item.get("ended_at")),
                    cost_usd=costs.total_usd,
                )
            )
        for row, flag in zip(rows, flag_regressions(records), strict=True):
            row.regression, row.grew_most = flag.regression, flag.grew_most
        base = None
        if records:
            # The baseline shown is over every run listed; each flag used only the runs before it.
            whole = baseline([r.cost_usd for r in records])
            base = Baseline(
                median_usd=money(whole.median_usd),
                mad_usd=money(whole.mad_usd),
                threshold_usd=money(whole.threshold_usd),
            )
        return WorkflowCosts(workflow=workflow, calculator=self.calculator.name, runs=rows, baseline=base)
