"""Logs on the local stack: a step's output stored by a real worker, read over HTTP and by the CLI."""

from __future__ import annotations

import json

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, wait

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def noisy_run(api: httpx.Client) -> str:
    run_id = start(api, "noisy")
    assert wait(api, run_id, timeout=120)["status"] == "succeeded"
    return run_id


def test_every_line_is_stored_in_order_once_the_run_has_finished(api: httpx.Client, noisy_run: str) -> None:
    page = api.get(f"/runs/{noisy_run}/logs", params={"step": "print", "stream": "stdout"}).json()
    assert [line["text"] for line in page["lines"]] == [f"out {i:04d}" for i in range(5000)]
    assert page["more"] is False
    seqs = [line["seq"] for line in page["lines"]]
    assert seqs == sorted(seqs)


def test_stderr_filter_has_only_the_errors(api: httpx.Client, noisy_run: str) -> None:
    lines = api.get(f"/runs/{noisy_run}/logs", params={"stream": "stderr"}).json()["lines"]
    assert [(line["step"], line["text"]) for line in lines] == [
        ("print", f"warning {i:04d}") for i in range(0, 5000, 500)
    ]


def test_search_finds_a_line_in_the_whole_log(api: httpx.Client, noisy_run: str) -> None:
    lines = api.get(f"/runs/{noisy_run}/logs", params={"q": "NEEDLE"}).json()["lines"]
    assert [(line["step"], line["stream"], line["text"]) for line in lines] == [
        ("after", "stdout", "needle in the haystack")
    ]
    one = api.get(f"/runs/{noisy_run}/logs", params={"q": "out 4321"}).json()["lines"]
    assert [line["text"] for line in one] == ["out 4321"]


def test_jsonl_download(api: httpx.Client, noisy_run: str) -> None:
    response = api.get(f"/runs/{noisy_run}/logs", params={"format": "jsonl", "step": "after"})
    assert response.headers["content-type"] == "application/x-ndjson"
    assert response.headers["content-disposition"] == f'attachment; filename="{noisy_run}-logs.jsonl"'
    assert [json.loads(row)["text"] for row in response.text.splitlines()] == ["needle in the haystack"]


def test_cli_logs_errors(stack: LocalStack, noisy_run: str) -> None:
    result = CliRunner().invoke(app, ["--api", stack.api_url, "logs", noisy_run, "--errors"])
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [f"[print] warning {i:04d}" for i in range(0, 5000, 500)]
