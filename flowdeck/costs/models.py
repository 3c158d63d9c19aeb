"""Usage as the runner measures it, and the cost breakdowns the API answers."""

from __future__ import annotations

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# Money is Decimal; in JSON answers a string ("0.012345"), so no float rounding reaches a caller.
Money = Annotated[Decimal, PlainSerializer(lambda v: format(v, "f"), return_type=str, when_used="json")]
MONEY_PLACES = Decimal("0.000001")


def money_text(value: Any) -> str | None:
    """Any stored amount (Decimal, number, decimal string) as the API's one JSON form: "0.012345"."""
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        return None
    return format(amount, "f")


def money(value: Decimal) -> Decimal:
    """Rounded to a millionth of a dollar, the precision every answer uses."""
    return value.quantize(MONEY_PLACES)


class ModelUsage(BaseModel):
    """Tokens one model used (summed per model within a step)."""

    model_config = ConfigDict(extra="ignore")
    model: str = Field(min_length=1, max_length=200)
    input_tokens: int = Field(default=0, ge=0)
    output_tokens: int = Field(default=0, ge=0)


# Fargate bills a task for at least one minute (from the start of its image pull to its stop).
FARGATE_MINIMUM_SECONDS = 60.0


class ComputeUsage(BaseModel):
    """Compute time of one step and the resource class it ran in.

    Pool: the process's seconds in a shared worker. Fresh: the step's own task, from the start of
    its image pull to the end of the step (the task stops right after).
    """

    seconds: float = Field(default=0.0, ge=0)
    vcpu: float = 0.25
    memory_gb: float = 0.5
    mode: str = "pool"
    architecture: str = "x86_64"

    @property
    def billed_seconds(self) -> float:
        """The seconds a price applies to: a fresh task is billed one minute at least."""
        return max(self.seconds, FARGATE_MINIMUM_SECONDS) if self.mode == "fresh" else self.seconds

    @property
    def resource_class(self) -> str:
        return f"{self.vcpu:g} vCPU / {self.memory_gb:g} GB ({self.mode})"


class StepUsage(BaseModel):
    """What one step used: compute and model tokens (as stored on the step item under `usage`)."""

    compute: ComputeUsage = Field(default_factory=ComputeUsage)
    models: list[ModelUsage] = Field(default_factory=list)

    @classmethod
    def from_stored(cls, value: Any) -> StepUsage | None:
        """The usage stored on a step item, or None when there is none (or it is unreadable)."""
        if not isinstance(value, dict):
            return None
        try:
            return cls.model_validate(value)
        except ValueError:
            return None


def add_models(usages: list[ModelUsage]) -> list[ModelUsage]:
    """Tokens summed per model, in first-seen order."""
    totals: dict[str, ModelUsage] = {}
    for usage in usages:
        seen = totals.setdefault(usage.model, ModelUsage(model=usage.model))
        seen.input_tokens += usage.input_tokens
        seen.output_tokens += usage.output_tokens
    return list(totals.values())


class ModelCost(BaseModel):
    model: str
    input_tokens: int
    output_tokens: int
    cost_usd: Money


class ComputeCost(BaseModel):
    resource_class: str
    seconds: float
    cost_usd: Money


class StepCost(BaseModel):
    step: str
    cost_usd: Money
    compute_seconds: float
    resource_class: str | None = None
    models: list[ModelCost] = Field(default_factory=list)


class RunCosts(BaseModel):
    """GET /runs/{id}/costs."""

    run_id: str
    currency: str = "USD"
    calculator: str
    total_usd: Money
    by_model: list[ModelCost]
    by_compute: list[ComputeCost]
    steps: list[StepCost]


class TrendRun(BaseModel):
    run_id: str
    started_at: str | None = None
    duration_s: float | None = None
    cost_usd: Money
    regression: bool = False
    grew_most: str | None = None


class Baseline(BaseModel):
    median_usd: Money
    mad_usd: Money
    threshold_usd: Money


class WorkflowCosts(BaseModel):
    """GET /workflows/{wf}/costs."""

    workflow: str
    calculator: str
    runs: list[TrendRun]
    baseline: Baseline | None = None
