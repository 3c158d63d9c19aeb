"""The AWS cost model of bench/aws_cost.py: usage counts -> dollars at list prices (Decimal, unrounded;
figures per 1,000 runs rounded half up to $0.0001)."""

from __future__ import annotations

from decimal import Decimal

from bench.aws_cost import bill, idle_worker_usd_per_month, per_1000_runs
from flowdeck.local.metering import read_units, write_units


def test_one_million_of_each_unit_costs_its_list_price() -> None:
    million = 10**6
    dollars = bill(
        {
            "transitions": million,
            "ddb_wru": million,
            "ddb_rru": million,
            "sqs_requests": million,
            "lambda_requests": million,
            "lambda_gb_seconds": million,
            "api_requests": million,
            "ws_messages": million,
            "ws_connection_minutes": million,
            "logs_bytes": 2**30,
            "xray_traces": million,
        }
    )
    assert dollars["Step Functions"] == Decimal("25")
    assert dollars["DynamoDB"] == Decimal("0.625") + Decimal("0.125")
    assert dollars["SQS"] == Decimal("0.40")
    assert dollars["Lambda"] == Decimal("0.20") + Decimal("16.6667")
    assert dollars["API Gateway REST"] == Decimal("3.50")
    assert dollars["API Gateway WebSocket"] == Decimal("1.00") + Decimal("0.25")
    assert dollars["CloudWatch Logs"] == Decimal("0.50")
    assert dollars["X-Ray"] == Decimal("5.00")
    assert dollars["S3"] == 0


def test_a_five_step_run_of_transitions_only_is_rounded_per_1000_runs() -> None:
    # 9 transitions a run: 9 x $0.000025 = $0.000225 a run = $0.225 per 1,000 runs
    per_run = sum(bill({"transitions": 9}).values(), Decimal(0))
    assert per_1000_runs(per_run) == Decimal("0.2250")
    assert per_1000_runs(Decimal("0.00000004999")) == Decimal("0.0000")
    assert per_1000_runs(Decimal("0.00000005")) == Decimal("0.0001")


def test_missing_usage_costs_nothing() -> None:
    assert sum(bill({}).values(), Decimal(0)) == 0


def test_idle_worker_long_polls_cost_a_fixed_amount_a_month() -> None:
    # Workers wait 20 s per receive: 180 receives an hour x 730 hours x $0.40 per million
    assert idle_worker_usd_per_month() == Decimal("0.0526")


def test_capacity_units_round_up_per_kb_and_per_4_kb() -> None:
    assert [write_units(b) for b in (0, 1, 1024, 1025, 2500)] == [1, 1, 1, 2, 3]
    assert read_units(100, consistent=False) == 0.5
    assert read_units(4097, consistent=False) == 1.0
    assert read_units(4097, consistent=True) == 2.0
