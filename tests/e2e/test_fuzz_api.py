"""The API fuzzed (issue 18): schemathesis generates requests for every operation of /openapi.json, with
bodies, paths, query strings and content types the document allows and many it does not, and sends them
to the session's local stack. A server error, or an answer whose status, content type, headers or body the
document does not describe, fails the operation's test with the request that reproduces it.

Bounded for `make test` (a fixed seed, FUZZ_EXAMPLES generated cases per operation after schemathesis'
coverage cases); `bench/fuzz.py` runs a longer one. The fuzzer reaches records of its own workflow only
(`fuzz-target`, one no-op step): `wf`, `run_id` and `step` are drawn half the time from its names and are
otherwise generated, never the name of another workflow, so the other tests' runs are left alone.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import schemathesis
from hypothesis import assume
from openapi_contract import api_contract
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from flowdeck.local.stack import LocalStack
from flowdeck.runs.service import idempotent_run_id
from lambdas.routes.approvals import approval_decisions, link_key
from lambdas.routes.hooks import trigger_service
from lambdas.routes.slack import slack_interactions
from tests.e2e.conftest import wait

pytestmark = pytest.mark.e2e

WORKFLOW = "fuzz-target"
STEP = "only"
SEED_KEY = "fuzz-seed"
# The run the fuzzer may read, cancel and retry: started under a fixed idempotency key, so its id is known
# before the stack is up (the schema, and so its dictionaries, is built when the tests are collected).
SEED_RUN = idempotent_run_id(WORKFLOW, SEED_KEY)
SEED = 18
FUZZ_EXAMPLES = 12
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
USER = "fuzz@example.com"

CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "headers": {"X-Flowdeck-User": USER},
        "generation": {"max-examples": FUZZ_EXAMPLES, "deterministic": True, "database": "none"},
        "phases": {
            "examples": {"enabled": False},
            "coverage": {"unexpected-methods": []},
            "stateful": {"enabled": False},
        },
        "dictionaries": {
            "workflows": {"values": [WORKFLOW]},
            "runs": {"values": [SEED_RUN]},
            "steps": {"values": [STEP]},
        },
        "parameters": {
            "path.wf": {"dictionary": "workflows", "probability": 0.5},
            "path.run_id": {"dictionary": "runs", "probability": 0.5},
            "path.step": {"dictionary": "steps", "probability": 0.5},
        },
    }
)
schema = schemathesis.openapi.from_dict(api_contract().document, config=CONFIG)


@dataclass(frozen=True)
class Target:
    """The stack the fuzzer calls, and the workflows it must leave alone."""

    url: str
    others: frozenset[str]


@pytest.fixture(scope="module")
def target(stack: LocalStack) -> Iterator[Target]:
    """The stack with the seed run finished; afterwards the fuzzer's workflow is active again."""
    with httpx.Client(base_url=stack.api_url, headers={"X-Flowdeck-User": USER}, timeout=30) as client:
        started = client.post(f"/workflows/{WORKFLOW}/runs", json={"idempotency_key": SEED_KEY})
        assert started.status_code == 202, started.text
        assert wait(client, SEED_RUN)["status"] == "succeeded"
        names = frozenset(w["name"] for w in client.get("/workflows").json()["workflows"])
        yield Target(stack.api_url, names - {WORKFLOW})
        # PUT /workflows/{wf}/state may have paused it: leave the session's stack as it was.
        client.put(f"/workflows/{WORKFLOW}/state", json={"active": True})
    # The handler remembers a missing secret for a minute (as a Lambda container does): the fuzzer asked
    # for the GitHub, Slack and link secrets before the tests that store them, so start those afresh.
    for dependency in (trigger_service, slack_interactions, link_key, approval_decisions):
        dependency.cache_clear()


@schema.parametrize()
def test_the_api_answers_every_generated_request_as_its_document_says(
    case: schemathesis.Case, target: Target
) -> None:
    # Another workflow's name would reach the other tests' records: the fuzzer keeps to its own.
    assume((case.path_parameters or {}).get("wf") not in target.others)
    case.call_and_validate(base_url=target.url, checks=CHECKS, timeout=30)
