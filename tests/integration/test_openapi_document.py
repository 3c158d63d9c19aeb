"""/openapi.json documents what each route answers: a body schema for every success, SPEC §3 errors."""

from __future__ import annotations

import json

import pytest
from openapi_contract import JSON, api_contract
from openapi_spec_validator import validate

ERROR_BODY = {"$ref": "#/components/schemas/ErrorBody"}
# The e-mailed approval links answer HTML pages, refusals included (they are opened in a browser).
HTML_ROUTES = {("GET", "/approvals/{token}"), ("POST", "/approvals/{token}")}
OPERATIONS = [(op.method, op.template) for op in api_contract().operations]


def test_the_document_is_valid_openapi_3_1() -> None:
    assert api_contract().document["openapi"].startswith("3.1")
    validate(api_contract().document)


def test_the_document_lists_every_route_once() -> None:
    assert len(OPERATIONS) == len(set(OPERATIONS)) == 26


@pytest.mark.parametrize(("method", "template"), OPERATIONS)
def test_every_success_documents_its_body(method: str, template: str) -> None:
    op = api_contract().operation_at(method, template)
    successes = {int(s): r for s, r in op.spec["responses"].items() if int(s) < 400}
    assert successes, "no success documented"
    for status, response in successes.items():
        if status == 302:
            continue  # a redirect to S3: no body
        content = response.get("content")
        assert content, f"{status} documents no body"
        for media, spec in content.items():
            schema = spec.get("schema")
            assert schema, f"{status} {media} has no schema"
            if media == JSON:
                target = api_contract().resolve(schema)
                # One object, or one of several (an artifact's preview or its link).
                for variant in [api_contract().resolve(v) for v in target.get("anyOf", [])] or [target]:
                    assert variant.get("type") == "object" and variant.get("properties"), (status, variant)


@pytest.mark.parametrize(("method", "template"), OPERATIONS)
def test_every_json_route_documents_its_errors_in_the_spec_shape(method: str, template: str) -> None:
    op = api_contract().operation_at(method, template)
    errors = {int(s): r for s, r in op.spec["responses"].items() if int(s) >= 400}
    if (method, template) in HTML_ROUTES:
        assert {401, 403, 404, 409, 410} <= set(errors)
        return
    if "{" in template or op.spec.get("parameters") or op.spec.get("requestBody"):
        assert errors, "a route that reads its request documents how it refuses it"
    for status, response in errors.items():
        assert response["content"][JSON]["schema"] == ERROR_BODY, status
    if op.spec.get("requestBody"):
        assert {413, 422} <= set(errors) or template.startswith("/hooks/"), sorted(errors)
        assert 413 in errors
    if any(p["in"] == "query" for p in op.spec.get("parameters", [])) and not template.startswith("/inbox"):
        assert 422 in errors


def test_error_body_is_the_spec_shape() -> None:
    schema = api_contract().document["components"]["schemas"]["ErrorBody"]
    assert schema["required"] == ["error", "message"]
    assert set(schema["properties"]) == {"error", "message"}


def test_run_view_documents_its_steps_and_the_fields_left_out_when_not_given() -> None:
    schemas = api_contract().document["components"]["schemas"]
    step = schemas["StepView"]
    assert {"id", "status", "attempt", "outputs", "actions"} <= set(step["required"])
    # Only while the step waits, only on an approval step: optional, so absent is within the contract.
    assert not {"waiting_since", "waited_s", "allow_skip", "approval"} & set(step["required"])
    assert step["additionalProperties"] is False
    run = schemas["RunView"]
    assert run["properties"]["steps"]["items"] == {"$ref": "#/components/schemas/StepView"}


def test_the_checker_refuses_an_answer_that_breaks_the_contract() -> None:
    contract = api_contract()
    headers = {"Content-Type": JSON}
    good = {"run_id": "r1", "status": "running"}
    assert contract.problems("POST", "/workflows/hello/runs", 202, headers, json.dumps(good)) == []
    assert contract.problems("POST", "/workflows/hello/runs", 202, headers, json.dumps(good | {"x": 1}))
    assert contract.problems("POST", "/workflows/hello/runs", 202, headers, json.dumps({"status": 3}))
    assert contract.problems("GET", "/runs", 409, headers, json.dumps({"error": "Conflict", "message": "m"}))
    assert contract.problems("GET", "/runs/r1", 404, headers, json.dumps({"error": "RunNotFound"}))
    nested = contract.operation("GET", "/runs/r1/artifacts/build/reports/junit.xml")
    assert nested is not None and nested.template == "/runs/{run_id}/artifacts/{step}/{path}"
    github = contract.operation("POST", "/hooks/github")
    assert github is not None and github.template == "/hooks/github"
