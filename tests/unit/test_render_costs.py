"""`flowdeck show` with costs: the run's total in the header, each step's cost beside its timing."""

from __future__ import annotations

from flowdeck.cli.render import summary_lines, usd

RUN = {
    "workflow": "agent-review",
    "run_id": "r1",
    "status": "succeeded",
    "duration_s": 2.0,
    "trigger": "manual",
    "cost_usd": 0.316004,
    "steps": [
        {"id": "triage", "status": "succeeded", "duration_s": 0.5, "attempt": 1, "cost_usd": "0.003422"},
        {"id": "review", "status": "succeeded", "duration_s": 0.8, "attempt": 1, "cost_usd": "0.270581"},
    ],
}


def test_show_prints_the_run_cost_and_each_step_cost() -> None:
    lines = summary_lines(RUN)

    assert lines[0].endswith("Cost: $0.32")
    assert lines[1].endswith("$0.003422")
    assert lines[2].endswith("$0.27")


def test_a_run_without_cost_shows_none() -> None:
    assert "Cost" not in summary_lines(RUN | {"cost_usd": 0, "steps": []})[0]


def test_usd_keeps_sub_cent_amounts_visible() -> None:
    assert (usd(0), usd("0.000011"), usd(1.5)) == ("$0.00", "$0.000011", "$1.50")
