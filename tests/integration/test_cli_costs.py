"""`flowdeck costs` against a fake API over real HTTP: the breakdown, the trend, and its errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.http import ApiServer

COSTS = {
    "run_id": "r1",
    "currency": "USD",
    "calculator": "rate-card",
    "total_usd": "0.316004",
    "by_model": [
        {"model": "claude-sonnet-4", "input_tokens": 73000, "output_tokens": 6200, "cost_usd": "0.312000"}
    ],
    "by_compute": [{"resource_class": "1 vCPU / 2 GB (pool)", "seconds": 0.8, "cost_usd": "0.000011"}],
    "steps": [{"step": "review", "cost_usd": "0.270581", "compute_seconds": 0.8, "models": []}],
}
TREND = {
    "workflow": "agent-review",
    "calculator": "rate-card",
    "runs": [
        {
            "run_id": "r1",
            "started_at": None,
            "duration_s": 2,
            "cost_usd": "0.3",
            "regression": False,
            "grew_most": None,
        },
        {
            "run_id": "r2",
            "started_at": None,
            "duration_s": 2,
            "cost_usd": "0.9",
            "regression": True,
            "grew_most": "review",
        },
    ],
    "baseline": {"median_usd": "0.3", "mad_usd": "0", "threshold_usd": "0.315"},
}


def answer(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


class FakeApi:
    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.requests.append(event)
        if event["path"] == "/runs/r1/costs":
            return answer(200, COSTS)
        if event["path"] == "/workflows/agent-review/costs":
            return answer(200, TREND)
        return answer(404, {"error": "RunNotFound", "message": "no run with id 'nope'"})


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def cli(fake: FakeApi) -> Iterator[CliRunner]:
    with ApiServer(fake, port=0) as server:
        yield CliRunner(env={"FLOWDECK_API": server.url, "FLOWDECK_USER": "tester"})


def test_costs_of_a_run_prints_model_compute_and_step_tables(cli: CliRunner) -> None:
    result = cli.invoke(app, ["costs", "r1"])

    assert result.exit_code == 0, result.output
    for text in (
        "Total: $0.316004",
        "claude-sonnet-4",
        "73,000",
        "1 vCPU / 2 GB (pool)",
        "review",
        "0.270581",
    ):
        assert text in result.stdout


def test_costs_of_a_workflow_marks_regressions_and_passes_last(cli: CliRunner, fake: FakeApi) -> None:
    result = cli.invoke(app, ["costs", "--workflow", "agent-review", "--last", "10"])

    assert result.exit_code == 0, result.output
    assert "▲ regression (review)" in result.stdout
    assert fake.requests[-1]["queryStringParameters"] == {"last": "10"}


def test_costs_json_prints_the_api_answer(cli: CliRunner) -> None:
    result = cli.invoke(app, ["--json", "costs", "r1"])

    assert json.loads(result.stdout) == COSTS


def test_costs_needs_exactly_one_of_run_or_workflow(cli: CliRunner) -> None:
    assert cli.invoke(app, ["costs"]).exit_code == 2
    assert cli.invoke(app, ["costs", "r1", "--workflow", "w"]).exit_code == 2


def test_costs_of_an_unknown_run_exits_non_zero_with_the_api_message(cli: CliRunner) -> None:
    result = cli.invoke(app, ["costs", "nope"])

    assert result.exit_code == 1
    assert "no run with id 'nope'" in result.output
