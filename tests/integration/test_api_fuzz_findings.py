"""What the API fuzzer found (issue 18; tests/e2e/test_fuzz_api.py), each as a request the handler refuses
in SPEC §3's shape instead of answering 500 or answering for another route."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from openapi_contract import JSON, api_contract

from tests.integration.test_api import Api, api_event, assert_error
from tests.integration.test_api import api as api  # the fixture, shared

NOT_UTF8 = b'{"reason": "\xff\xfe"}'
POST_ROUTES = [
    "/workflows/hello/runs",
    "/runs/r1/cancel",
    "/runs/r1/retry",
    "/runs/r1/steps/greet/approve",
    "/runs/r1/steps/greet/reject",
    "/runs/r1/steps/greet/retry",
    "/runs/r1/steps/greet/skip",
    "/hooks/hello",
    "/hooks/github",
    "/slack/interactions",
    "/approvals/not-a-token",
]


def sent_as(event: dict[str, Any], content_type: str) -> dict[str, Any]:
    """The event with its Content-Type header replaced."""
    event["headers"] = {k: v for k, v in event["headers"].items() if k.lower() != "content-type"}
    event["multiValueHeaders"] = {
        k: v for k, v in event["multiValueHeaders"].items() if k.lower() != "content-type"
    }
    event["headers"]["Content-Type"] = content_type
    event["multiValueHeaders"]["Content-Type"] = [content_type]
    return event


def binary(event: dict[str, Any], body: bytes) -> dict[str, Any]:
    """The event with a body that is not UTF-8, base64-encoded as the local server and API Gateway pass it."""
    return event | {"body": base64.b64encode(body).decode("ascii"), "isBase64Encoded": True}


def run_item(api: Api, run_id: str) -> dict[str, Any]:
    item = api.ddb.get_item(TableName="flowdeck-runs-test", Key={"pk": {"S": run_id}, "sk": {"S": "RUN"}})
    return dict(item["Item"])


# -- GET /runs?workflow=&unknown=42 answered 500: DynamoDB refuses an empty index key ---------------------
@pytest.mark.parametrize(
    "query",
    [
        {"workflow": "", "unknown": "42"},
        {"workflow": ""},
        {"started_by": ""},
        {"workflow": "w" * 65},
        {"started_by": "u" * 513},
    ],
)
def test_an_empty_or_oversized_history_filter_is_422_not_a_server_error(
    api: Api, query: dict[str, str]
) -> None:
    (field,) = set(query) - {"unknown"}

    message = assert_error(api.call("GET", "/runs", query=query), 422, "ValidationError")

    assert message.startswith(f"{field}: String should have at")


# -- a POST body that is not UTF-8 answered 500 (powertools decodes it as UTF-8 text to read JSON) --------
@pytest.mark.parametrize("content_type", ["application/json", None])
def test_a_cancel_body_that_is_not_utf8_is_400_and_cancels_nothing(
    api: Api, content_type: str | None
) -> None:
    api.seed_run("r1", "hello", "2026-11-20T10:00:00Z", status="running")
    event = binary(api_event("POST", "/runs/r1/cancel", body=""), NOT_UTF8)
    if content_type is None:
        event["headers"].pop("Content-Type")
        event["multiValueHeaders"].pop("Content-Type")

    message = assert_error(api.invoke(event), 400, "BadRequest")

    assert message == "the request body is not UTF-8 text: send JSON in UTF-8"
    assert "cancel_requested_at" not in run_item(api, "r1")


def test_a_retry_body_that_is_not_utf8_is_400_and_starts_nothing(api: Api) -> None:
    api.seed_failed_run("r1")
    event = binary(api_event("POST", "/runs/r1/retry", body=""), b"xH\xe9\x00")

    assert_error(api.invoke(event), 400, "BadRequest")
    assert api.executions() == []


# -- multipart/form-data without a boundary answered 500 on every POST route --------------------------
@pytest.mark.parametrize(
    ("path", "content_type"),
    [(path, "multipart/form-data") for path in POST_ROUTES]
    + [
        ("/runs/r1/cancel", "multipart/form-data; boundary="),
        ("/runs/r1/cancel", "multipart/form-data; charset=utf-8"),
    ],
)
def test_multipart_without_a_boundary_is_400_on_every_post_route(
    api: Api, path: str, content_type: str
) -> None:
    event = sent_as(api_event("POST", path, body='{"mode": "graceful", "reason": "0"}'), content_type)

    message = assert_error(api.invoke(event), 400, "BadRequest")

    assert message.startswith("Content-Type multipart/form-data needs a boundary parameter")
    assert api.executions() == []


def test_a_multipart_text_body_outside_latin1_is_read_as_sent(api: Api) -> None:
    # Powertools read a text (not base64) multipart body as latin-1: "€" raised, "é" came out as "Ã©".
    body = '--xyz\r\nContent-Disposition: form-data; name="reason"\r\n\r\nstop € é\r\n--xyz--\r\n'
    api.seed_run("r1", "hello", "2026-11-20T10:00:00Z", status="running")
    event = sent_as(api_event("POST", "/runs/r1/cancel", body=body), "multipart/form-data; boundary=xyz")

    status, answer = api.invoke(event)

    assert status == 202, answer
    assert run_item(api, "r1")["cancel_reason"] == {"S": "stop € é"}


# -- GET /workflows/%0A answered the list of workflows: `$` matches before a final newline --------------
@pytest.mark.parametrize(
    ("method", "path"),
    [("GET", "/workflows/\n"), ("GET", "/runs/r1\n"), ("GET", "/runs\n"), ("POST", "/runs/r1/cancel\n")],
)
def test_a_path_with_a_control_character_is_404_not_another_route(api: Api, method: str, path: str) -> None:
    api.seed_run("r1", "hello", "2026-11-20T10:00:00Z", status="running")

    message = assert_error(api.call(method, path, body="{}" if method == "POST" else None), 404, "NotFound")

    assert message == f"no route for {method} {path}"
    assert "cancel_requested_at" not in run_item(api, "r1")


# -- undocumented answers: the document lists every status a route gives -----------------------------
def refused_before_the_route_runs(method: str, template: str) -> set[int]:
    """404 for a path parameter no route pattern accepts; 400 and 413 for a body refused at the door."""
    return ({404} if "{" in template else set()) | ({400, 413} if method in ("POST", "PUT") else set())


@pytest.mark.parametrize(
    ("method", "template"),
    [
        (op.method, op.template)
        for op in api_contract().operations
        if refused_before_the_route_runs(op.method, op.template)
    ],
)
def test_every_route_documents_the_errors_it_answers_before_its_code_runs(method: str, template: str) -> None:
    responses = api_contract().operation_at(method, template).spec["responses"]

    for status in refused_before_the_route_runs(method, template):
        content = responses[str(status)]["content"]
        assert content[JSON]["schema"] == {"$ref": "#/components/schemas/ErrorBody"}, (status, content)


def test_a_parameter_no_route_pattern_accepts_answers_the_documented_404(api: Api) -> None:
    # A name with a quote matches no route pattern: no_route answers, as every templated route documents.
    status, body = api.call("GET", '/workflows/he"llo/costs')

    assert (status, body["error"]) == (404, "NotFound")
    assert not api_contract().problems(
        "GET", '/workflows/he"llo/costs', 404, {"Content-Type": JSON}, json.dumps(body)
    )


def test_the_inbox_documents_its_200(api: Api) -> None:
    status, body = api.call("GET", "/inbox")

    assert status == 200, body
    assert "200" in api_contract().operation_at("GET", "/inbox").spec["responses"]


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/runs/{id}"),
        ("GET", "/runs/{id}/logs"),
        ("GET", "/runs/{id}/costs"),
        ("GET", "/runs/{id}/artifacts"),
        ("POST", "/runs/{id}/cancel"),
        ("POST", "/runs/{id}/retry"),
    ],
)
def test_a_run_id_longer_than_any_key_dynamodb_takes_is_refused_before_it_is_read(
    api: Api, method: str, path: str
) -> None:
    # DynamoDB refuses a partition key over 2,048 bytes (a ValidationException: a 500 on AWS); moto
    # takes it, so only the refusal before any read keeps AWS and the local stack alike.
    answer = api.call(method, path.format(id="é" * 1025), body="{}" if method == "POST" else None)

    message = assert_error(answer, 422, "ValidationError")
    assert "run_id" in message
