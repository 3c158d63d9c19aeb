"""The CLI against a local ApiServer with a scripted fake API: output, inputs, following and errors."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flowdeck.cli import render
from flowdeck.cli.main import app
from flowdeck.local.http import ApiServer

HELLO = {
    "name": "hello",
    "inputs": {"count": {"type": "integer"}, "loud": {"type": "boolean"}, "name": {"type": "string"}},
}
ROW = {
    "run_id": "r1",
    "workflow": "hello",
    "status": "succeeded",
    "trigger": "manual",
    "started_by": "tester",
    "started_at": "2026-11-21T18:25:01Z",
    "ended_at": "2026-11-21T18:25:08Z",
    "duration_s": 7.0,
    "cost_usd": 0,
}


def answer(status: int, body: Any) -> dict[str, Any]:
    return {"statusCode": status, "headers": {"Content-Type": "application/json"}, "body": json.dumps(body)}


class FakeApi:
    """Just enough of SPEC §3; GET /runs/r1 walks through `states` one read at a time."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.states = ["missing", "running", "succeeded"]

    def run(self, status: str) -> dict[str, Any]:
        steps = [
            {"id": "greet", "status": status, "duration_s": 1.2, "attempt": 1, "summary": "said hello"},
            {
                "id": "bye",
                "status": "pending" if status == "running" else status,
                "duration_s": None,
                "attempt": 0,
            },
        ]
        return ROW | {"status": status, "steps": steps}

    def __call__(self, event: dict[str, Any], context: Any) -> dict[str, Any]:
        self.requests.append(event)
        route = (event["httpMethod"], event["path"])
        if route == ("GET", "/workflows/hello"):
            return answer(200, HELLO)
        if route == ("POST", "/workflows/hello/runs"):
            return answer(202, {"run_id": "r1"})
        if route == ("GET", "/runs"):
            if (event.get("queryStringParameters") or {}).get("cursor") == "abc":
                return answer(200, {"runs": [ROW | {"run_id": "r2"}], "next_cursor": None})
            return answer(200, {"runs": [ROW], "next_cursor": "abc"})
        if route == ("GET", "/runs/r1/logs"):
            line = {"seq": 1, "step": "greet", "t": "2026-11-21T18:25:02Z", "stream": "stdout", "text": "hi"}
            return answer(
                200,
                {
                    "run_id": "r1",
                    "run_status": "succeeded",
                    "lines": [line],
                    "more": False,
                    "next_since_seq": 1,
                },
            )
        if route == ("GET", "/runs/r1"):
            state = self.states.pop(0) if len(self.states) > 1 else self.states[0]
            if state == "missing":
                return answer(404, {"error": "RunNotFound", "message": "no run with id 'r1'"})
            return answer(200, self.run(state))
        return answer(404, {"error": "WorkflowNotFound", "message": "no workflow named 'nope'"})

    def last(self, method: str, path: str) -> dict[str, Any]:
        return next(e for e in reversed(self.requests) if (e["httpMethod"], e["path"]) == (method, path))


@pytest.fixture
def fake() -> FakeApi:
    return FakeApi()


@pytest.fixture
def cli(fake: FakeApi, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setattr(render, "POLL_SECONDS", 0.01)
    with ApiServer(fake, port=0) as server:
        yield CliRunner(env={"FLOWDECK_API": server.url, "FLOWDECK_USER": "tester"})


def test_run_coerces_inputs_to_declared_types_and_prints_json(cli: CliRunner, fake: FakeApi) -> None:
    result = cli.invoke(app, ["run", "hello", "-i", "count=3", "-i", "loud=yes", "-i", "name=007", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"run_id": "r1"}
    started = fake.last("POST", "/workflows/hello/runs")
    assert json.loads(started["body"]) == {"inputs": {"count": 3, "loud": True, "name": "007"}}
    assert started["headers"]["x-flowdeck-user"] == "tester"


def test_run_follow_waits_for_the_run_and_prints_the_summary(cli: CliRunner) -> None:
    result = cli.invoke(app, ["run", "hello", "--follow"])

    assert result.exit_code == 0, result.output
    assert "Status: Succeeded ✓" in result.stdout
    assert "└─ said hello" in result.stdout


def test_run_follow_exits_non_zero_when_the_run_fails(cli: CliRunner, fake: FakeApi) -> None:
    fake.states = ["running", "failed"]

    result = cli.invoke(app, ["--json", "run", "hello", "--follow"])

    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "failed"


def test_runs_passes_filters_and_prints_json(cli: CliRunner, fake: FakeApi) -> None:
    result = cli.invoke(
        app, ["runs", "--status", "failed", "--user", "bob", "--since", "2h", "--limit", "5", "--json"]
    )

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"runs": [ROW], "next_cursor": "abc"}
    query = fake.last("GET", "/runs")["queryStringParameters"]
    assert {k: query[k] for k in ("status", "started_by", "limit", "sort")} == {
        "status": "failed",
        "started_by": "bob",
        "limit": "5",
        "sort": "started_at",
    }
    assert query["since"].endswith("+00:00")


def test_runs_table_and_next_page_hint(cli: CliRunner) -> None:
    result = cli.invoke(app, ["runs"])

    assert result.exit_code == 0, result.output
    assert "r1" in result.stdout
    assert "--cursor abc" in result.stdout


def test_runs_next_page_hint_repeats_the_query_with_ages_resolved(cli: CliRunner, fake: FakeApi) -> None:
    result = cli.invoke(
        app, ["runs", "--status", "failed", "--since", "2h", "--sort", "cost", "--limit", "5"]
    )

    assert result.exit_code == 0, result.output
    since = fake.last("GET", "/runs")["queryStringParameters"]["since"]
    hint = " ".join(result.stdout.split())
    assert f"flowdeck runs --status failed --since {since} --sort cost --limit 5 --cursor abc" in hint


def test_runs_all_follows_the_cursors_to_the_last_page(cli: CliRunner, fake: FakeApi) -> None:
    result = cli.invoke(app, ["runs", "--workflow", "hello", "--all", "--json"])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {"runs": [ROW, ROW | {"run_id": "r2"}], "next_cursor": None}
    pages = [e["queryStringParameters"] for e in fake.requests if e["path"] == "/runs"]
    assert [(p["workflow"], p.get("cursor")) for p in pages] == [("hello", None), ("hello", "abc")]


def test_show_prints_the_run(cli: CliRunner, fake: FakeApi) -> None:
    fake.states = ["succeeded"]

    assert json.loads(cli.invoke(app, ["show", "r1", "--json"]).stdout)["steps"][0]["id"] == "greet"
    assert "greet" in cli.invoke(app, ["show", "r1"]).stdout


def test_api_error_is_one_clean_line_and_exit_1(cli: CliRunner) -> None:
    result = cli.invoke(app, ["run", "nope"])

    assert result.exit_code == 1
    assert result.stderr.strip() == "error: WorkflowNotFound: no workflow named 'nope'"
    assert "Traceback" not in result.output


def test_bad_input_pair_is_a_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(app, ["run", "hello", "-i", "count"])

    assert result.exit_code == 2
    assert "KEY=VALUE" in result.output


def test_unreachable_api_is_a_clean_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{probe.getsockname()[1]}"

    result = CliRunner().invoke(app, ["--api", url, "runs"])

    assert result.exit_code == 1
    assert (
        result.stderr.strip() == f"error: cannot reach the Flowdeck API at {url} — is `flowdeck up` running?"
    )
    assert "Traceback" not in result.output


def test_logs_output_asks_for_stdout_only(cli: CliRunner, fake: FakeApi) -> None:
    result = cli.invoke(app, ["logs", "r1", "--output"])

    assert result.exit_code == 0, result.output
    assert "hi" in result.stdout
    assert fake.last("GET", "/runs/r1/logs")["queryStringParameters"]["stream"] == "stdout"


def test_logs_output_and_errors_together_is_a_usage_error(cli: CliRunner) -> None:
    result = cli.invoke(app, ["logs", "r1", "--output", "--errors"])

    assert result.exit_code == 2
    assert "--output and --errors" in result.stderr


def test_help_shows_plain_flags_without_a_type() -> None:
    result = CliRunner(env={"COLUMNS": "80"}).invoke(app, ["logs", "--help"])

    assert "--errors" in result.stdout and "--output" in result.stdout
    assert "<bool>" not in result.stdout
    assert "<str>" in result.stdout  # options that take a value still say what


def test_up_with_a_missing_workflows_folder_exits_2_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"

    result = CliRunner().invoke(app, ["up", "--workflows", str(missing)])

    assert result.exit_code == 2
    assert f"--workflows {missing}: no such folder" in " ".join(result.stderr.split())
