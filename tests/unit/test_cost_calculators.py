"""Cost core: calculators (Decimal exact), loading by config, the rate card, the trend's MAD flags."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from flowdeck.costs.calculator import (
    CalculatorError,
    NullCalculator,
    RateCardCalculator,
    load_calculator,
)
from flowdeck.costs.models import ComputeUsage, ModelUsage, RunCosts
from flowdeck.costs.trend import RunCostRecord, baseline, flag_regressions


class FlatCalculator:
    """A custom calculator, loaded by import path in a test: $1 per model call, compute free."""

    name = "flat"

    def compute_cost(self, usage: ComputeUsage, region: str) -> Decimal:
        return Decimal(0)

    def model_cost(self, usage: ModelUsage) -> Decimal:
        return Decimal(1)


class NotACalculator:
    name = "nope"


def test_rate_card_prices_models_exactly_in_decimal() -> None:
    calculator = RateCardCalculator.default()

    cost = calculator.model_cost(ModelUsage(model="claude-sonnet-4", input_tokens=1, output_tokens=3))

    # 1 x $3/M + 3 x $15/M: exact, where floats would give 4.8000000000000004e-05.
    assert cost == Decimal("0.000048")
    assert isinstance(cost, Decimal)


def test_rate_card_prices_fargate_per_vcpu_and_gb_hour_by_region_and_architecture() -> None:
    calculator = RateCardCalculator.default()
    hour = ComputeUsage(seconds=3600, vcpu=1, memory_gb=2)

    assert calculator.compute_cost(hour, "us-east-1") == Decimal("0.04048") + 2 * Decimal("0.004445")
    arm = hour.model_copy(update={"architecture": "arm64"})
    assert calculator.compute_cost(arm, "us-east-1") == Decimal("0.03238") + 2 * Decimal("0.00356")
    # A region not on the card is priced at the card's default region.
    assert calculator.compute_cost(hour, "ap-south-1") == calculator.compute_cost(hour, "us-east-1")


def test_unknown_model_costs_zero_unless_the_card_has_a_default() -> None:
    assert RateCardCalculator.default().model_cost(ModelUsage(model="homegrown", input_tokens=10**6)) == 0


def test_null_calculator_is_zero_for_any_usage() -> None:
    calculator = NullCalculator()

    assert calculator.model_cost(ModelUsage(model="gpt-4o", input_tokens=10**9, output_tokens=10**9)) == 0
    assert calculator.compute_cost(ComputeUsage(seconds=10**6, vcpu=16, memory_gb=120), "us-east-1") == 0


def test_packaged_rate_card_says_when_its_prices_were_taken() -> None:
    card = RateCardCalculator.default().card

    assert card.prices_as_of and card.source
    assert {"us-east-1", "eu-west-1"} <= set(card.fargate)
    assert {"x86_64", "arm64"} <= set(card.fargate["us-east-1"])
    assert {"claude-sonnet-4", "gpt-4o-mini"} <= set(card.models)


def test_rate_card_from_file_reads_a_custom_card(tmp_path: Path) -> None:
    path = tmp_path / "card.json"
    card = {
        "prices_as_of": "2026-01-01",
        "fargate": {"us-east-1": {"x86_64": {"vcpu_hour": 0.1, "gb_hour": 0.01}}},
        "models": {"m": {"input_per_million": 1.1, "output_per_million": 2.2}},
    }
    path.write_text(json.dumps(card))

    calculator = load_calculator("rate-card", path)

    assert calculator.model_cost(ModelUsage(model="m", input_tokens=10**6, output_tokens=10**6)) == Decimal(
        "3.3"
    )


@pytest.mark.parametrize(
    "content",
    ["{not json", json.dumps({"fargate": {}}), json.dumps({"prices_as_of": "x", "fargate": {}, "x": 1})],
)
def test_a_bad_rate_card_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "card.json"
    path.write_text(content)

    with pytest.raises(CalculatorError, match="rate card"):
        RateCardCalculator.from_file(path)


def test_a_missing_rate_card_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CalculatorError, match="rate card"):
        load_calculator("rate-card", tmp_path / "absent.json")


def test_calculators_are_selected_by_name_or_import_path() -> None:
    assert isinstance(load_calculator("null"), NullCalculator)
    assert isinstance(load_calculator("rate-card"), RateCardCalculator)
    custom = load_calculator("tests.unit.test_cost_calculators:FlatCalculator")
    assert custom.name == "flat"
    assert custom.model_cost(ModelUsage(model="x")) == 1


@pytest.mark.parametrize(
    ("choice", "mentions"),
    [
        ("no.such.module:Calc", "cannot be imported"),
        ("tests.unit.test_cost_calculators:Absent", "cannot be imported"),
        ("tests.unit.test_cost_calculators:NotACalculator", "lacks"),
        ("rate_card", "expected 'null', 'rate-card'"),
    ],
)
def test_a_bad_calculator_choice_is_a_clear_startup_error(choice: str, mentions: str) -> None:
    with pytest.raises(CalculatorError, match=mentions):
        load_calculator(choice)


def test_money_is_a_string_in_json_answers() -> None:
    costs = RunCosts(
        run_id="r", calculator="x", total_usd=Decimal("0.012345"), by_model=[], by_compute=[], steps=[]
    )

    assert json.loads(costs.model_dump_json())["total_usd"] == "0.012345"


# -- trend -------------------------------------------------------------------------------------
def history(costs: list[str]) -> list[RunCostRecord]:
    return [
        RunCostRecord(f"r{n}", Decimal(c), {"plan": Decimal("0.10"), "review": Decimal(c) - Decimal("0.10")})
        for n, c in enumerate(costs)
    ]


def test_injected_regression_over_ten_runs_is_flagged_with_the_step_that_grew() -> None:
    costs = ["0.50", "0.52", "0.49", "0.51", "0.50", "0.53", "0.48", "1.40", "0.51", "0.50"]

    flags = flag_regressions(history(costs))

    assert [f.regression for f in flags] == [i == 7 for i in range(10)]
    assert flags[7].grew_most == "review"
    assert all(f.grew_most is None for i, f in enumerate(flags) if i != 7)


def test_no_flag_before_five_previous_runs() -> None:
    flags = flag_regressions(history(["0.10", "0.10", "0.10", "0.10", "9.00"]))

    assert not any(f.regression for f in flags)


def test_baseline_is_median_plus_k_scaled_mad() -> None:
    base = baseline([Decimal(v) for v in ("1", "2", "3", "4", "100")])

    assert base.median_usd == 3
    assert base.mad_usd == Decimal("1.4826")
    assert base.threshold_usd == 3 + 3 * Decimal("1.4826")


def test_a_flat_history_flags_a_real_rise_not_jitter() -> None:
    flags = flag_regressions(history(["0.50"] * 6 + ["0.51", "0.56"]))

    # MAD is 0 here: the threshold falls back to 5% above the median, so 2% is jitter, 12% is not.
    assert [f.regression for f in flags][-2:] == [False, True]
