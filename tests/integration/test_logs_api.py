"""GET /runs/{id}/logs through the Lambda handler on moto: formats, filters, search, paging, errors."""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.config import get_settings
from flowdeck.local.http import ApiServer
from flowdeck.stores.logs import LogStore
from flowdeck.stores.schema import create_logs_table_kwargs
from lambdas.api import lambda_handler

EVENT_TEMPLATE = json.loads(
    (Path(__file__).parent.parent / "events" / "apigw_rest_start_run.json").read_text()
)
TABLE = "flowdeck-runs-test"  # as in conftest.py
LOGS_TABLE = "flowdeck-logs-test"
RUN = "20261121-120000-abcd0123"


CONTEXT: list[Any] = []


def get(path: str, query: dict[str, str] | None = None) -> dict[str, Any]:
    event = copy.deepcopy(EVENT_TEMPLATE)
    headers = {"Accept": "application/json", "Host": "127.0.0.1:8765", "X-Flowdeck-User": "alice"}
    event.update(
        httpMethod="GET",
        path=path,
        body=None,
        headers=headers,
        multiValueHeaders={k: [v] for k, v in headers.items()},
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["requestContext"].update(httpMethod="GET", path=path)
    return lambda_handler(event, CONTEXT[0])


def body(answer: dict[str, Any]) -> Any:
    return json.loads(answer["body"])


@pytest.fixture
def logs(
    flowdeck_aws: tuple[Any, Any], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[LogStore]:
    """A finished run with 30 batches of two steps' output on both streams."""
    CONTEXT[:] = [lambda_context]
    ddb, _ = flowdeck_aws
    monkeypatch.setenv("FLOWDECK_LOGS_TABLE", LOGS_TABLE)
    get_settings.cache_clear()
    ddb.create_table(**create_logs_table_kwargs(LOGS_TABLE))
    ddb.put_item(
        TableName=TABLE,
        Item={
            "pk": {"S": RUN},
            "sk": {"S": "RUN"},
            "kind": {"S": "run"},
            "run_id": {"S": RUN},
            "workflow": {"S": "hello"},
            "status": {"S": "succeeded"},
            "started_at": {"S": "2026-11-21T12:00:00+00:00"},
        },
    )
    store = LogStore(LOGS_TABLE, ddb)
    for i in range(30):
        step = "build" if i < 20 else "test"
        store.append(
            RUN,
            step,
            1,
            [
                {"t": 1763726400.0 + i, "stream": "stdout", "text": f"{step} line {i}"},
                {"t": 1763726400.5 + i, "stream": "stderr", "text": f"{step} warning {i}"},
            ],
            0,
        )
    yield store
    get_settings.cache_clear()


def test_json_answer_has_every_line_in_order_with_the_next_seq(logs):
    answer = get(f"/runs/{RUN}/logs")
    assert answer["statusCode"] == 200
    page = body(answer)
    assert page["run_id"] == RUN
    assert page["run_status"] == "succeeded"
    assert len(page["lines"]) == 60
    assert page["lines"][0] == {
        "seq": 1,
        "step": "build",
        "t": 1763726400.0,
        "stream": "stdout",
        "text": "build line 0",
    }
    assert [line["seq"] for line in page["lines"]] == sorted(line["seq"] for line in page["lines"])
    assert (page["next_since_seq"], page["more"]) == (30, False)


def test_stream_filters_are_the_output_and_errors_views(logs):
    errors = body(get(f"/runs/{RUN}/logs", {"stream": "stderr"}))["lines"]
    assert {line["stream"] for line in errors} == {"stderr"}
    assert len(errors) == 30
    output = body(get(f"/runs/{RUN}/logs", {"stream": "stdout", "step": "test"}))["lines"]
    assert [line["text"] for line in output] == [f"test line {i}" for i in range(20, 30)]


def test_search_and_since_seq(logs):
    found = body(get(f"/runs/{RUN}/logs", {"q": "WARNING 2"}))["lines"]
    assert [line["text"] for line in found] == ["build warning 2"] + [
        f"test warning {i}" for i in range(20, 30)
    ]
    later = body(get(f"/runs/{RUN}/logs", {"since_seq": "28"}))
    assert [line["seq"] for line in later["lines"]] == [29, 29, 30, 30]
    assert body(get(f"/runs/{RUN}/logs", {"since_seq": "30"}))["lines"] == []


def test_limit_pages_whole_batches_and_the_rest_follows_from_next_since_seq(logs):
    first = body(get(f"/runs/{RUN}/logs", {"limit": "3"}))
    # Two lines a batch: the answer ends with the batch that reaches the limit.
    assert [line["text"] for line in first["lines"]] == [
        "build line 0",
        "build warning 0",
        "build line 1",
        "build warning 1",
    ]
    assert (first["next_since_seq"], first["more"]) == (2, True)
    rest = body(get(f"/runs/{RUN}/logs", {"since_seq": "2", "limit": "56"}))
    assert (len(rest["lines"]), rest["next_since_seq"], rest["more"]) == (56, 30, False)


def test_jsonl_download_is_one_object_per_line_as_an_attachment(logs):
    answer = get(f"/runs/{RUN}/logs", {"format": "jsonl", "stream": "stderr"})
    assert answer["statusCode"] == 200
    headers = answer["multiValueHeaders"] | {k: [v] for k, v in (answer.get("headers") or {}).items()}
    assert headers["Content-Type"] == ["application/x-ndjson"]
    assert headers["Content-Disposition"] == [f'attachment; filename="{RUN}-logs.jsonl"']
    rows = [json.loads(row) for row in answer["body"].splitlines()]
    assert len(rows) == 30
    assert rows[0] == {
        "seq": 1,
        "step": "build",
        "t": 1763726400.5,
        "stream": "stderr",
        "text": "build warning 0",
    }


def test_text_download_prefixes_each_line_with_its_step(logs):
    answer = get(f"/runs/{RUN}/logs", {"format": "text", "q": "line 2"})
    headers = answer["multiValueHeaders"] | {k: [v] for k, v in (answer.get("headers") or {}).items()}
    assert headers["Content-Type"][0].startswith("text/plain")
    assert headers["Content-Disposition"] == [f'attachment; filename="{RUN}-logs.txt"']
    assert answer["body"].splitlines() == ["[build] build line 2"] + [
        f"[test] test line {i}" for i in range(20, 30)
    ]


def test_unknown_run_is_404(logs):
    answer = get("/runs/nope/logs")
    assert answer["statusCode"] == 404
    assert body(answer)["error"] == "RunNotFound"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"stream": "both"}, "stream"),
        ({"since_seq": "-1"}, "since_seq"),
        ({"format": "xml"}, "format"),
        ({"limit": "0"}, "limit"),
        ({"limit": "50001"}, "limit"),
    ],
)
def test_bad_parameters_are_422(logs, query, field):
    answer = get(f"/runs/{RUN}/logs", query)
    assert answer["statusCode"] == 422
    problem = body(answer)
    assert problem["error"] == "ValidationError"
    assert field in problem["message"]


@pytest.fixture
def cli(logs: LogStore, lambda_context: Any) -> Iterator[CliRunner]:
    """The CLI against the real handler served over HTTP (moto behind it)."""
    with ApiServer(lambda event, _: lambda_handler(event, lambda_context), port=0) as server:
        yield CliRunner(env={"FLOWDECK_API": server.url, "FLOWDECK_USER": "tester"})


def test_cli_logs_errors_prints_only_stderr_lines(cli: CliRunner):
    result = cli.invoke(app, ["logs", RUN, "--errors"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"[build] build warning {i}" for i in range(20)] + [
        f"[test] test warning {i}" for i in range(20, 30)
    ]


def test_cli_logs_grep_and_step_as_json(cli: CliRunner):
    result = cli.invoke(app, ["logs", RUN, "--step", "test", "--grep", "LINE 2", "--json"])
    assert result.exit_code == 0, result.output
    rows = [json.loads(row) for row in result.stdout.splitlines()]
    assert [row["text"] for row in rows] == [f"test line {i}" for i in range(20, 30)]


def test_cli_logs_follow_prints_new_lines_until_the_run_finishes(cli: CliRunner, logs: LogStore):
    ddb = logs.client
    running = {":s": {"S": "running"}}
    key = {"pk": {"S": RUN}, "sk": {"S": "RUN"}}
    ddb.update_item(
        TableName=TABLE,
        Key=key,
        UpdateExpression="SET #s = :s",
        ExpressionAttributeNames={"#s": "status"},
        ExpressionAttributeValues=running,
    )

    def finish_later() -> None:
        time.sleep(0.7)
        logs.append(RUN, "deploy", 1, [{"t": 1763726500.0, "stream": "stdout", "text": "deployed"}], 0)
        ddb.update_item(
            TableName=TABLE,
            Key=key,
            UpdateExpression="SET #s = :s",
            ExpressionAttributeNames={"#s": "status"},
            ExpressionAttributeValues={":s": {"S": "succeeded"}},
        )

    later = threading.Thread(target=finish_later)
    later.start()
    result = cli.invoke(app, ["logs", RUN, "--follow", "--grep", "deployed"])
    later.join()
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == ["[deploy] deployed"]


def test_cli_logs_unknown_run_fails_with_the_api_message(cli: CliRunner):
    result = cli.invoke(app, ["logs", "nope"])
    assert result.exit_code == 1
    assert "RunNotFound" in result.stderr
