"""`flowdeck show` of a run the budget guard cancelled."""

from __future__ import annotations

from rich.console import Console

from flowdeck.cli.render import run_view, summary_lines

CAUSE = "run cost $0.0135 passed max_cost_usd $0.01"


def cancelled_run() -> dict[str, object]:
    return {
        "workflow": "budget",
        "run_id": "20261121-182501-1a2b3c4d",
        "status": "cancelled",
        "duration_s": 4.1,
        "trigger": "manual",
        "error": "BudgetExceeded",
        "error_cause": CAUSE,
        "cancel_reason": "BudgetExceeded",
        "steps": [
            {
                "id": "spend",
                "status": "cancelled",
                "duration_s": 3.9,
                "attempt": 1,
                "error": "BudgetExceeded",
            },
            {"id": "after", "status": "pending", "duration_s": None, "attempt": 0},
        ],
    }


def test_summary_of_a_run_cancelled_by_the_budget_guard_says_why() -> None:
    lines = summary_lines(cancelled_run())

    assert "Status: Cancelled ■" in lines[0]
    assert lines[1] == "1. spend   ■ 3.9s  └─ BudgetExceeded"
    assert lines[2] == "2. after   ○"
    assert lines[-1] == f"Cancelled: BudgetExceeded: {CAUSE}"


def test_rich_view_of_a_budget_cancelled_run_says_why() -> None:
    console = Console(record=True, width=200)
    console.print(run_view(cancelled_run()))

    assert f"Cancelled: BudgetExceeded: {CAUSE}" in console.export_text()


def test_the_cost_beside_a_budget_message_shows_the_digits_that_differ() -> None:
    run = cancelled_run() | {
        "cost_usd": "0.0512",
        "error_cause": "run cost $0.0512 passed max_cost_usd $0.05",
    }

    header = summary_lines(run)[0]

    assert "Cost: $0.0512" in header
    assert "Cost: $0.05 " not in header + " "


def test_a_run_the_budget_did_not_stop_shows_its_cost_to_the_cent() -> None:
    run = cancelled_run() | {
        "status": "succeeded",
        "cancel_reason": None,
        "error": None,
        "cost_usd": "0.0512",
    }

    assert "Cost: $0.05" in summary_lines(run)[0]


def test_run_without_a_cancel_reason_has_no_cancelled_line() -> None:
    run = cancelled_run() | {"cancel_reason": None}

    assert not any(line.startswith("Cancelled:") for line in summary_lines(run))
