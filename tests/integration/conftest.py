"""Integration fixtures: moto with the runs table and one state machine per fixture workflow."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import boto3
import pytest
from moto import mock_aws
from moto.dynamodb.models import DynamoDBBackend
from openapi_contract import api_contract

from flowdeck.catalog import Catalog
from flowdeck.config import get_settings
from flowdeck.local.emulator import ITEM_WRITES, serialized
from flowdeck.stores.schema import create_logs_table_kwargs, create_table_kwargs
from lambdas.deps import run_service

TESTS = Path(__file__).parent.parent
WORKFLOWS = TESTS / "fixtures" / "workflows"
TABLE = "flowdeck-runs-test"
ARN_PREFIX = "arn:aws:states:us-east-1:123456789012:stateMachine:flowdeck-"
PASS_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})


@pytest.fixture(autouse=True)
def no_local_stack_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests here run on moto in this process or name their endpoints: never on the session stack.

    The e2e tier's stack points the process's environment at its emulator (FLOWDECK_AWS_ENDPOINT_URL);
    a Settings() built here would send its clients there (a worker polled another queue and never
    saw its step).
    """
    monkeypatch.delenv("FLOWDECK_AWS_ENDPOINT_URL", raising=False)


@pytest.fixture
def flowdeck_aws(monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Any, Any]]:
    """(dynamodb, stepfunctions) clients on moto, with the API's settings pointing at them.

    moto starts before any client exists; the cached settings and service are rebuilt inside it.
    Executions are only recorded (moto's executor is off), so tests control run state by seeding items.
    """
    with api_on_moto(monkeypatch, WORKFLOWS) as clients:
        yield clients


@contextmanager
def api_on_moto(monkeypatch: pytest.MonkeyPatch, workflows: Path) -> Iterator[tuple[Any, Any]]:
    """The API's settings on moto over a workflows folder: the runs table and one state machine each."""
    monkeypatch.setenv("FLOWDECK_RUNS_TABLE", TABLE)
    monkeypatch.setenv("FLOWDECK_WORKFLOWS_DIR", str(workflows))
    monkeypatch.setenv("FLOWDECK_STATE_MACHINE_ARN_PREFIX", ARN_PREFIX)
    monkeypatch.setenv("FLOWDECK_TRUST_USER_HEADER", "true")
    monkeypatch.delenv("FLOWDECK_AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    run_service.cache_clear()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_table_kwargs(TABLE))
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        for name in Catalog.from_dir(workflows).names():
            sfn.create_state_machine(
                name=f"flowdeck-{name}",
                definition=PASS_DEFINITION,
                roleArn="arn:aws:iam::123456789012:role/flowdeck-sfn",
            )
        yield ddb, sfn
    get_settings.cache_clear()
    run_service.cache_clear()


@pytest.fixture
def runs_ddb() -> Iterator[Any]:
    """A DynamoDB client on moto holding only the runs table: for the store and worker adapters."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_table_kwargs(TABLE))
        yield ddb


@pytest.fixture
def worker_aws() -> Iterator[dict[str, Any]]:
    """What a whole pool worker uses, on moto: the steps queue, the runs and logs tables, the bucket."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_table_kwargs(TABLE))
        ddb.create_table(**create_logs_table_kwargs("flowdeck-logs-test"))
        boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="flowdeck-artifacts-test")
        sqs = boto3.client("sqs", region_name="us-east-1")
        queue_url = sqs.create_queue(QueueName="flowdeck-steps-test")["QueueUrl"]
        yield {"ddb": ddb, "sqs": sqs, "queue_url": queue_url}


@pytest.fixture
def atomic_item_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Conditional writes checked and applied as one step, as DynamoDB (and the local emulator) do.

    moto checks a condition and writes in separate steps, so threads interleave: two writers may both
    pass `attribute_not_exists` and the second overwrites the first.
    """
    lock = threading.RLock()
    for name in ITEM_WRITES:
        monkeypatch.setattr(DynamoDBBackend, name, serialized(getattr(DynamoDBBackend, name), lock))


@pytest.fixture(autouse=True)
def answers_keep_the_openapi_contract(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every answer the API gives in these tests has its status documented and a body its schema accepts."""
    from lambdas.api import app

    resolve = app.resolve

    def checked(event: dict[str, Any], context: Any) -> dict[str, Any]:
        answer = resolve(event, context)
        problems = api_contract().problems(
            event["httpMethod"],
            event["path"],
            answer["statusCode"],
            answer.get("headers") or {},
            answer.get("body") or "",
        )
        assert not problems, "the answer breaks /openapi.json: " + "; ".join(problems)
        return answer

    monkeypatch.setattr(app, "resolve", checked)
