"""Pricing: the CostCalculator interface, a $0 calculator, a JSON rate card, and loading by config."""

from __future__ import annotations

import importlib
import json
from decimal import Decimal
from importlib import resources
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

from flowdeck.costs.models import ComputeUsage, ModelUsage

NULL = "null"
RATE_CARD = "rate-card"
SECONDS_PER_HOUR = Decimal(3600)
PER_MILLION = Decimal(1_000_000)


class CalculatorError(ValueError):
    """The configured calculator or rate card cannot be used (raised at startup)."""


@runtime_checkable
class CostCalculator(Protocol):
    """Prices usage. Implementations must return Decimal dollars, never floats."""

    name: str

    def compute_cost(self, usage: ComputeUsage, region: str) -> Decimal: ...

    def model_cost(self, usage: ModelUsage) -> Decimal: ...


class NullCalculator:
    """Everything costs $0; usage is still recorded and shown faithfully."""

    name = NULL

    def compute_cost(self, usage: ComputeUsage, region: str) -> Decimal:
        return Decimal(0)

    def model_cost(self, usage: ModelUsage) -> Decimal:
        return Decimal(0)


class FargateRate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    vcpu_hour: Decimal = Field(ge=0)
    gb_hour: Decimal = Field(ge=0)


class ModelRate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    input_per_million: Decimal = Field(ge=0)
    output_per_million: Decimal = Field(ge=0)


class RateCard(BaseModel):
    """The JSON rate card: Fargate by region and architecture, models per million tokens."""

    model_config = ConfigDict(extra="forbid")
    prices_as_of: str
    source: str = ""
    currency: str = "USD"
    # region -> architecture ("x86_64" | "arm64") -> rate
    fargate: dict[str, dict[str, FargateRate]]
    models: dict[str, ModelRate] = Field(default_factory=dict)
    # A model not on the card is priced at this rate when set, else at $0.
    default_model: ModelRate | None = None
    default_region: str = "us-east-1"


class RateCardCalculator:
    """Prices usage from a rate card (list prices as of the card's `prices_as_of`)."""

    name = RATE_CARD

    def __init__(self, card: RateCard) -> None:
        self.card = card

    @classmethod
    def from_file(cls, path: str | Path) -> RateCardCalculator:
        try:
            # Floats parsed as Decimal: the card's prices stay exact.
            raw = json.loads(Path(path).read_text(encoding="utf-8"), parse_float=Decimal)
            return cls(RateCard.model_validate(raw))
        except (OSError, ValueError) as exc:
            raise CalculatorError(f"rate card {path}: {exc}") from exc

    @classmethod
    def default(cls) -> RateCardCalculator:
        """The card packaged with Flowdeck (flowdeck/costs/rate_card.json)."""
        card = resources.files("flowdeck.costs").joinpath("rate_card.json").read_text(encoding="utf-8")
        return cls(RateCard.model_validate(json.loads(card, parse_float=Decimal)))

    def compute_cost(self, usage: ComputeUsage, region: str) -> Decimal:
        regions = self.card.fargate
        by_arch = regions.get(region) or regions.get(self.card.default_region) or {}
        rate = by_arch.get(usage.architecture) or by_arch.get("x86_64")
        if rate is None:
            return Decimal(0)
        # str() first: the float measurements enter Decimal arithmetic at their printed value.
        hours = Decimal(str(usage.billed_seconds)) / SECONDS_PER_HOUR
        per_hour = Decimal(str(usage.vcpu)) * rate.vcpu_hour + Decimal(str(usage.memory_gb)) * rate.gb_hour
        return hours * per_hour

    def model_cost(self, usage: ModelUsage) -> Decimal:
        rate = self.card.models.get(usage.model) or self.card.default_model
        if rate is None:
            return Decimal(0)
        return (
            usage.input_tokens * rate.input_per_million + usage.output_tokens * rate.output_per_million
        ) / PER_MILLION


def load_calculator(choice: str = RATE_CARD, rate_card: str | Path | None = None) -> CostCalculator:
    """`null`, `rate-card` (the card at `rate_card`, default the packaged one) or `package.module:Class`."""
    if choice == NULL:
        return NullCalculator()
    if choice == RATE_CARD:
        return RateCardCalculator.from_file(rate_card) if rate_card else RateCardCalculator.default()
    module_name, _, class_name = choice.partition(":")
    if not module_name or not class_name:
        raise CalculatorError(
            f"cost calculator {choice!r}: expected 'null', 'rate-card' or 'package.module:ClassName'"
        )
    try:
        factory: Any = getattr(importlib.import_module(module_name), class_name)
    except (ImportError, AttributeError) as exc:
        raise CalculatorError(f"cost calculator {choice!r} cannot be imported: {exc}") from exc
    calculator = factory()
    if not isinstance(calculator, CostCalculator):
        raise CalculatorError(
            f"cost calculator {choice!r} lacks name, compute_cost(usage, region) or model_cost(usage)"
        )
    return calculator
