"""Cost trend over a workflow's runs: robust baseline (median + k·MAD) and the step that grew most."""

from __future__ import annotations

from dataclasses import dataclass, field
from decimal import Decimal
from statistics import median

# MAD x 1.4826 estimates the standard deviation of normally distributed costs.
MAD_SCALE = Decimal("1.4826")
DEFAULT_K = Decimal(3)
MIN_PREVIOUS = 5
# Costs that barely vary (MAD near 0) would flag jitter: a regression rises at least this share too.
MIN_RISE = Decimal("0.05")


@dataclass
class RunCostRecord:
    """One run's cost, total and per step, oldest first in the input."""

    run_id: str
    cost_usd: Decimal
    steps: dict[str, Decimal] = field(default_factory=dict)


@dataclass
class Flag:
    regression: bool = False
    grew_most: str | None = None
    threshold_usd: Decimal | None = None


@dataclass
class Baseline:
    median_usd: Decimal
    mad_usd: Decimal
    threshold_usd: Decimal


def baseline(costs: list[Decimal], k: Decimal = DEFAULT_K) -> Baseline:
    """Median, scaled MAD, and the threshold median + max(k·MAD, 5% of the median) of `costs` (non-empty)."""
    center = median(costs)
    mad = median([abs(c - center) for c in costs]) * MAD_SCALE
    return Baseline(center, mad, center + max(k * mad, center * MIN_RISE))


def grew_most(record: RunCostRecord, previous: list[RunCostRecord]) -> str | None:
    """The step whose cost rose most above its median over `previous` runs."""
    best, best_growth = None, Decimal(0)
    for step, cost in sorted(record.steps.items()):
        history = [p.steps.get(step, Decimal(0)) for p in previous]
        growth = cost - (median(history) if history else Decimal(0))
        if growth > best_growth:
            best, best_growth = step, growth
    return best


def flag_regressions(
    records: list[RunCostRecord], k: Decimal = DEFAULT_K, min_previous: int = MIN_PREVIOUS
) -> list[Flag]:
    """One flag per record (oldest first): above median + k·MAD of all the runs before it."""
    flags = []
    for index, record in enumerate(records):
        previous = records[:index]
        if len(previous) < min_previous:
            flags.append(Flag())
            continue
        base = baseline([p.cost_usd for p in previous], k)
        above = record.cost_usd > base.threshold_usd
        flags.append(Flag(above, grew_most(record, previous) if above else None, base.threshold_usd))
    return flags
