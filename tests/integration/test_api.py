"""The REST API handler against moto: routes, identity, idempotency, paging and every error shape."""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from boto3.dynamodb.types import TypeSerializer

from flowdeck.config import get_settings
from lambdas.api import lambda_handler
from lambdas.deps import run_service

EVENT_TEMPLATE = json.loads(
    (Path(__file__).parent.parent / "events" / "apigw_rest_start_run.json").read_text()
)
TABLE = "flowdeck-runs-test"  # as in conftest.py
ARN_PREFIX = "arn:aws:states:us-east-1:123456789012:stateMachine:flowdeck-"

HELLO_DEFAULTS = {
    "greeting": "hello",
    "count": 1,
    "ratio": 0.5,
    "loud": False,
    "labels": {"team": "core"},
    "targets": ["world"],
}


def api_event(
    method: str,
    path: str,
    body: str | None = None,
    query: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
    user: str | None = "alice",
) -> dict[str, Any]:
    """An API Gateway REST proxy event shaped like tests/events/apigw_rest_start_run.json."""
    event = copy.deepcopy(EVENT_TEMPLATE)
    all_headers = {"Accept": "application/json", "Host": "127.0.0.1:8765"}
    if body is not None:
        all_headers["Content-Type"] = "application/json"
    if user is not None:
        all_headers["X-Flowdeck-User"] = user
    all_headers |= headers or {}
    event.update(
        httpMethod=method,
        path=path,
        body=body,
        headers=all_headers,
        multiValueHeaders={k: [v] for k, v in all_headers.items()},
        queryStringParameters=query or None,
        multiValueQueryStringParameters={k: [v] for k, v in query.items()} if query else None,
        pathParameters={"proxy": path.lstrip("/")},
    )
    event["requestContext"].update(httpMethod=method, path=path)
    return event


@dataclass
class Api:
    """Calls the Lambda handler and reads what moto recorded."""

    ddb: Any
    sfn: Any
    context: Any

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        return self.invoke(api_event(method, path, **kwargs))

    def invoke(self, event: dict[str, Any]) -> tuple[int, Any]:
        answer = lambda_handler(event, self.context)
        return answer["statusCode"], json.loads(answer["body"])

    def executions(self, workflow: str | None = None) -> list[dict[str, Any]]:
        names = [workflow] if workflow else ["hello", "deploy"]
        found = []
        for name in names:
            for summary in self.sfn.list_executions(stateMachineArn=ARN_PREFIX + name)["executions"]:
                found.append(self.sfn.describe_execution(executionArn=summary["executionArn"]))
        return found

    def seed_run(self, run_id: str, workflow: str, started_at: str, **fields: Any) -> None:
        """A run item as the state machine writes it (sk RUN, kind run, the plan of its steps)."""
        self.put(
            {
                "pk": run_id,
                "sk": "RUN",
                "kind": "run",
                "run_id": run_id,
                "workflow": workflow,
                "status": "succeeded",
                "trigger": "manual",
                "started_by": "alice",
                "started_at": started_at,
                "run_started_at": started_at,
                "inputs_json": json.dumps({"environment": "staging"}),
                "plan": [],
            }
            | fields
        )

    def seed_step(self, run_id: str, step_id: str, **fields: Any) -> None:
        """A step item as the worker writes it (sk STEP#<id>, attempts as attempt#<n> maps)."""
        self.put({"pk": run_id, "sk": f"STEP#{step_id}", "step": step_id} | fields)

    def seed_failed_run(self, run_id: str) -> None:
        """A run of `hello` whose one step `greet` failed: what a retry starts from."""
        self.seed_run(
            run_id,
            "hello",
            "2026-11-20T10:00:00Z",
            status="failed",
            plan=[{"id": "greet", "kind": "run"}],
            inputs_json=json.dumps({"name": "x"}),
        )
        self.seed_step(run_id, "greet", status="failed", error="StepFailed")

    def seed_outputs(self, run_id: str, outputs: dict[str, dict[str, Any]]) -> None:
        """The run's outputs item (sk OUTPUTS, one outputs#<step> attribute per step)."""
        self.put({"pk": run_id, "sk": "OUTPUTS"} | {f"outputs#{step}": out for step, out in outputs.items()})

    def put(self, item: dict[str, Any]) -> None:
        serializer = TypeSerializer()
        self.ddb.put_item(TableName=TABLE, Item={k: serializer.serialize(v) for k, v in item.items()})


@pytest.fixture
def api(flowdeck_aws: tuple[Any, Any], lambda_context: Any) -> Api:
    return Api(*flowdeck_aws, lambda_context)


def assert_error(answer: tuple[int, Any], status: int, code: str) -> str:
    got_status, body = answer
    assert (got_status, body.get("error")) == (status, code), body
    assert set(body) == {"error", "message"}
    assert "Traceback" not in body["message"]
    return body["message"]


# -- workflows ------------------------------------------------------------------------------------
def test_list_workflows_returns_every_definition(api: Api) -> None:
    status, body = api.call("GET", "/workflows")

    assert status == 200
    assert [w["name"] for w in body["workflows"]] == ["deploy", "hello"]
    hello = next(w for w in body["workflows"] if w["name"] == "hello")
    assert hello["inputs"]["count"] == {"type": "integer", "default": 1}


def test_get_workflow_includes_compiled_graph(api: Api) -> None:
    status, body = api.call("GET", "/workflows/deploy")

    assert status == 200
    assert body["graph"]["edges"] == [["plan", "apply"], ["apply", "health"]]
    assert [n["id"] for n in body["graph"]["nodes"]] == ["plan", "apply", "health"]
    assert body["states"]


def test_get_unknown_workflow_is_404(api: Api) -> None:
    assert_error(api.call("GET", "/workflows/nope"), 404, "WorkflowNotFound")


# -- starting runs --------------------------------------------------------------------------------
def test_start_run_from_example_event_starts_execution_with_merged_inputs(api: Api) -> None:
    status, body = api.invoke(copy.deepcopy(EVENT_TEMPLATE))

    assert status == 202
    # status: running, or queued at the workflow's concurrency limit (tests/integration/test_concurrency.py)
    assert body == {"run_id": body["run_id"], "status": "running"}
    [execution] = api.executions("hello")
    assert execution["name"] == body["run_id"]
    assert json.loads(execution["input"]) == {
        "inputs": HELLO_DEFAULTS | {"name": "world", "count": 3},
        "trigger": "manual",
        "started_by": "alice",
    }


def test_start_run_without_body_uses_defaults(api: Api) -> None:
    status, _ = api.call("POST", "/workflows/deploy/runs", body=None)

    assert status == 202
    [execution] = api.executions("deploy")
    assert json.loads(execution["input"])["inputs"] == {"environment": "staging"}


def test_repeat_with_same_idempotency_key_returns_same_run_and_starts_once(api: Api) -> None:
    body = json.dumps({"inputs": {"name": "x"}, "idempotency_key": "deploy-42"})

    first = api.call("POST", "/workflows/hello/runs", body=body)
    second = api.call("POST", "/workflows/hello/runs", body=body)

    assert first[0] == second[0] == 202
    assert first[1]["run_id"] == second[1]["run_id"]
    assert len(api.executions()) == 1


def test_header_identity_is_ignored_unless_trusted(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FLOWDECK_TRUST_USER_HEADER", "false")
    get_settings.cache_clear()

    api.call("POST", "/workflows/deploy/runs", body="{}", user="mallory")

    [execution] = api.executions("deploy")
    assert json.loads(execution["input"])["started_by"] == "anonymous"


def test_iam_identity_wins_over_header(api: Api) -> None:
    event = api_event("POST", "/workflows/deploy/runs", body="{}", user="mallory")
    event["requestContext"]["identity"]["userArn"] = "arn:aws:iam::123456789012:user/jane"

    assert api.invoke(event)[0] == 202
    [execution] = api.executions("deploy")
    assert json.loads(execution["input"])["started_by"] == "arn:aws:iam::123456789012:user/jane"


@pytest.mark.parametrize(
    ("path", "body", "status", "code", "mentions"),
    [
        ("/workflows/hello/runs", '{"inputs": ', 400, "BadRequest", "not valid JSON"),
        ("/workflows/hello/runs", '{"inputz": {}}', 422, "ValidationError", "inputz: unknown field"),
        ("/workflows/hello/runs", "[1]", 422, "ValidationError", "body:"),
        ("/workflows/hello/runs", '{"inputs": [1]}', 422, "ValidationError", "inputs:"),
        ("/workflows/hello/runs", '{"idempotency_key": ""}', 422, "ValidationError", "idempotency_key:"),
        (
            "/workflows/hello/runs",
            '{"inputs": {"name": "x", "count": "3"}}',
            422,
            "InvalidInputs",
            "inputs.count",
        ),
        (
            "/workflows/hello/runs",
            '{"inputs": {"name": "x", "loud": 1}}',
            422,
            "InvalidInputs",
            "inputs.loud",
        ),
        (
            "/workflows/hello/runs",
            '{"inputs": {"name": "x", "colour": 1}}',
            422,
            "InvalidInputs",
            "unknown input",
        ),
        ("/workflows/hello/runs", '{"inputs": {}}', 422, "InvalidInputs", "inputs.name"),
        ("/workflows/deploy/runs", '{"inputs": {"environment": "qa"}}', 422, "InvalidInputs", "one of"),
        ("/workflows/nope/runs", "{}", 404, "WorkflowNotFound", "nope"),
    ],
)
def test_bad_start_requests_are_refused_and_start_nothing(
    api: Api, path: str, body: str, status: int, code: str, mentions: str
) -> None:
    message = assert_error(api.call("POST", path, body=body), status, code)

    assert mentions in message
    assert api.executions() == []


def test_body_over_one_mib_is_413(api: Api) -> None:
    body = json.dumps({"inputs": {"name": "x" * (2 * 1024 * 1024)}})

    assert_error(api.call("POST", "/workflows/hello/runs", body=body), 413, "PayloadTooLarge")
    assert api.executions() == []


def test_non_json_content_type_is_400(api: Api) -> None:
    answer = api.call("POST", "/workflows/hello/runs", body="name=x", headers={"Content-Type": "text/plain"})

    assert_error(answer, 400, "BadRequest")
    assert api.executions() == []


@pytest.mark.parametrize("sent_as", [None, "application/x-www-form-urlencoded"])
def test_a_json_body_without_a_json_content_type_is_read_as_json(api: Api, sent_as: str | None) -> None:
    # `curl -d '{...}'` sends application/x-www-form-urlencoded; other clients send no type at all.
    event = api_event("POST", "/workflows/hello/runs", body='{"inputs": {"name": "curl"}}')
    event["headers"].pop("Content-Type")
    event["multiValueHeaders"].pop("Content-Type")
    if sent_as:
        event["headers"]["content-type"] = sent_as
        event["multiValueHeaders"]["content-type"] = [sent_as]

    status, body = api.invoke(event)

    assert status == 202, body
    (execution,) = api.executions("hello")
    assert json.loads(execution["input"])["inputs"]["name"] == "curl"


def test_a_form_body_to_a_json_route_is_refused_naming_its_content_type(api: Api) -> None:
    answer = api.call(
        "POST",
        "/workflows/hello/runs",
        body="inputs=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )

    message = assert_error(answer, 422, "ValidationError")
    assert "the body was sent as application/x-www-form-urlencoded" in message
    assert "Content-Type: application/json" in message
    assert api.executions() == []


def test_another_content_type_is_refused_naming_it(api: Api) -> None:
    answer = api.call("POST", "/workflows/hello/runs", body="{}", headers={"Content-Type": "text/plain"})

    assert (
        assert_error(answer, 400, "BadRequest") == "send the request body as application/json, not text/plain"
    )


# -- run history ----------------------------------------------------------------------------------
@pytest.fixture
def history(api: Api) -> Api:
    api.seed_run("r1", "hello", "2026-11-20T10:00:00Z", status="succeeded", ended_at="2026-11-20T10:00:07Z")
    api.seed_run("r2", "deploy", "2026-11-20T11:00:00Z", status="failed", started_by="bob")
    api.seed_run("r3", "deploy", "2026-11-20T12:00:00Z", status="succeeded", trigger="schedule")
    api.seed_run("r4", "hello", "2026-11-20T13:00:00Z", status="running")
    api.seed_run("r5", "deploy", "2026-11-20T14:00:00Z", status="failed", started_by="bob")
    return api


def test_list_runs_pages_newest_first_with_cursor(history: Api) -> None:
    seen: list[str] = []
    query = {"limit": "2"}
    for _ in range(5):
        status, body = history.call("GET", "/runs", query=query)
        assert status == 200
        assert len(body["runs"]) <= 2
        seen += [r["run_id"] for r in body["runs"]]
        if not body["next_cursor"]:
            break
        query = {"limit": "2", "cursor": body["next_cursor"]}

    assert seen == ["r5", "r4", "r3", "r2", "r1"]


def test_list_runs_row_shape(history: Api) -> None:
    _, body = history.call("GET", "/runs", query={"workflow": "hello", "order": "asc", "limit": "1"})

    assert body["runs"] == [
        {
            "run_id": "r1",
            "workflow": "hello",
            "status": "succeeded",
            "trigger": "manual",
            "trigger_detail": None,
            "started_by": "alice",
            "started_at": "2026-11-20T10:00:00Z",
            "ended_at": "2026-11-20T10:00:07Z",
            "duration_s": 7.0,
            "cost_usd": "0",
            "retry_of": None,
            "retries": [],
        }
    ]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"workflow": "deploy"}, ["r5", "r3", "r2"]),
        ({"status": "failed"}, ["r5", "r2"]),
        ({"trigger": "schedule"}, ["r3"]),
        ({"started_by": "bob", "workflow": "deploy"}, ["r5", "r2"]),
        ({"since": "2026-11-20T11:30:00Z", "until": "2026-11-20T13:30:00Z"}, ["r4", "r3"]),
        ({"since": "2026-11-20T12:00:00"}, ["r5", "r4", "r3"]),
        ({"order": "asc", "limit": "2"}, ["r1", "r2"]),
    ],
)
def test_list_runs_filters(history: Api, query: dict[str, str], expected: list[str]) -> None:
    status, body = history.call("GET", "/runs", query=query)

    assert status == 200
    assert [r["run_id"] for r in body["runs"]] == expected


@pytest.mark.parametrize(
    ("query", "status", "code", "mentions"),
    [
        ({"status": "bogus"}, 422, "ValidationError", "status:"),
        ({"trigger": "cron"}, 422, "ValidationError", "trigger:"),
        ({"limit": "0"}, 422, "ValidationError", "limit:"),
        ({"limit": "many"}, 422, "ValidationError", "limit:"),
        ({"since": "yesterday"}, 422, "ValidationError", "since:"),
        ({"order": "sideways"}, 422, "ValidationError", "order:"),
        ({"sort": "cost", "cursor": "eyJwayI6eyJTIjoieCJ9fQ=="}, 400, "BadRequest", "cursor"),
        ({"cursor": "not-a-cursor!"}, 400, "BadRequest", "cursor"),
        ({"cursor": "eyJwayI6eyJTIjoieCJ9fQ=="}, 400, "BadRequest", "cursor"),
    ],
)
def test_bad_run_queries_are_refused(
    history: Api, query: dict[str, str], status: int, code: str, mentions: str
) -> None:
    message = assert_error(history.call("GET", "/runs", query=query), status, code)

    assert mentions in message


DEPLOY_PLAN = [{"id": "plan", "kind": "run"}, {"id": "apply", "kind": "run"}, {"id": "health", "kind": "run"}]


def test_get_run_shows_steps_in_order_with_outputs(history: Api) -> None:
    history.seed_run(
        "r9",
        "deploy",
        "2026-11-21T10:00:00Z",
        status="failed",
        ended_at="2026-11-21T10:00:09Z",
        plan=DEPLOY_PLAN,
    )
    history.seed_step(
        "r9",
        "apply",
        status="failed",
        attempt=1,
        token="d41d8cd98f00b204e9800998ecf8427e",
        error="StepFailed",
        cause="exit code 2: no credentials",
        exit_code=2,
        started_at="2026-11-21T10:00:05Z",
        ended_at="2026-11-21T10:00:09Z",
        **{"attempt#1": {"attempt": 1, "status": "failed", "error": "StepFailed"}},
    )
    history.seed_step(
        "r9",
        "plan",
        status="succeeded",
        attempt=2,
        token="0cc175b9c0f1b6a831c399e269772661",
        summary="3 to add",
        started_at="2026-11-21T10:00:00Z",
        ended_at="2026-11-21T10:00:04Z",
        **{
            "attempt#2": {"attempt": 2, "status": "succeeded"},
            "attempt#1": {"attempt": 1, "status": "failed", "error": "StepFailed"},
        },
    )
    history.seed_outputs("r9", {"plan": {"add": 3}})

    status, run = history.call("GET", "/runs/r9")

    assert status == 200
    assert (run["run_id"], run["status"], run["inputs"]) == ("r9", "failed", {"environment": "staging"})
    assert [(s["id"], s["kind"], s["status"]) for s in run["steps"]] == [
        ("plan", "run", "succeeded"),
        ("apply", "run", "failed"),
        ("health", "run", "skipped"),
    ]
    plan, apply, health = run["steps"]
    assert (plan["outputs"], plan["attempt"], plan["duration_s"], plan["summary"]) == (
        {"add": 3},
        2,
        4.0,
        "3 to add",
    )
    assert [(a["attempt"], a["status"]) for a in plan["attempts"]] == [(1, "failed"), (2, "succeeded")]
    assert (apply["error"], apply["cause"], apply["exit_code"], apply["outputs"]) == (
        "StepFailed",
        "exit code 2: no credentials",
        2,
        {},
    )
    # No item: the failed run never reached it, so it reads skipped, with why, never attempted.
    assert (health["attempt"], health["attempts"], health["outputs"], health["started_at"]) == (
        0,
        [],
        {},
        None,
    )
    assert health["not_run"] == "the run failed at apply"
    # The run record names no cause: the failed step's own cause explains the run.
    assert run["error_cause"] == "exit code 2: no credentials"


def test_get_run_shows_a_step_the_state_machine_recorded_lost(history: Api) -> None:
    # RecordRunFailed wrote the error as JSON; its Cause may be null (moto drops SendTaskFailure's cause).
    error_json = json.dumps({"Error": "WorkerLost", "Cause": None})
    history.seed_run(
        "r8",
        "deploy",
        "2026-11-21T10:00:00Z",
        status="failed",
        error="WorkerLost",
        error_json=error_json,
        plan=DEPLOY_PLAN,
    )
    history.seed_step(
        "r8",
        "plan",
        status="succeeded",
        attempt=1,
        token="0cc175b9c0f1b6a831c399e269772661",
        **{"attempt#1": {"attempt": 1, "status": "succeeded"}},
    )
    # The worker's start record, then the lost-worker recorder's update (SET ... token = lost).
    history.seed_step(
        "r8",
        "apply",
        status="failed",
        attempt=1,
        token="lost",
        error="WorkerLost",
        cause="the worker running step apply stopped answering",
        started_at="2026-11-21T10:00:05Z",
        ended_at="2026-11-21T10:05:05Z",
        **{"attempt#1": {"attempt": 1, "status": "running", "started_at": "2026-11-21T10:00:05Z"}},
    )

    _, run = history.call("GET", "/runs/r8")

    assert [s["status"] for s in run["steps"]] == ["succeeded", "failed", "skipped"]
    apply = run["steps"][1]
    assert (apply["error"], apply["cause"]) == (
        "WorkerLost",
        "the worker running step apply stopped answering",
    )
    # The attempt that was running is shown as the state machine ended it.
    assert [(a["attempt"], a["status"], a["error"]) for a in apply["attempts"]] == [
        (1, "failed", "WorkerLost")
    ]
    assert (run["error"], run["error_cause"]) == (
        "WorkerLost",
        "the worker running step apply stopped answering",
    )


def test_get_unknown_run_is_404(api: Api) -> None:
    assert "nope" in assert_error(api.call("GET", "/runs/nope"), 404, "RunNotFound")


# -- the edges ------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"), [("GET", "/nope"), ("DELETE", "/runs"), ("PUT", "/workflows/hello")]
)
def test_unknown_route_is_404(api: Api, method: str, path: str) -> None:
    assert path in assert_error(api.call(method, path), 404, "NotFound")


def test_unexpected_error_is_500_without_details(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def explode(*_: Any) -> None:
        raise RuntimeError("secret detail")

    monkeypatch.setattr(run_service(), "list_workflows", explode)

    message = assert_error(api.call("GET", "/workflows"), 500, "InternalError")
    assert message == "internal error"


def test_openapi_document_lists_the_routes(api: Api) -> None:
    status, document = api.call("GET", "/openapi.json")

    assert status == 200
    assert document["info"]["title"] == "Flowdeck"
    assert {path: sorted(ops) for path, ops in document["paths"].items()} == {
        "/workflows": ["get"],
        "/workflows/{wf}": ["get"],
        "/workflows/{wf}/state": ["put"],
        "/workflows/{wf}/runs": ["post"],
        "/runs": ["get"],
        "/runs/{run_id}": ["get"],
        "/runs/{run_id}/artifacts": ["get"],
        "/runs/{run_id}/artifacts.zip": ["get"],
        "/runs/{run_id}/artifacts/{step}/{path}": ["get"],
        "/runs/{run_id}/logs": ["get"],
        "/runs/{run_id}/costs": ["get"],
        "/runs/{run_id}/retry": ["post"],
        "/runs/{run_id}/cancel": ["post"],
        "/runs/{run_id}/steps/{step}/retry": ["post"],
        "/runs/{run_id}/steps/{step}/skip": ["post"],
        "/workflows/{wf}/costs": ["get"],
        "/hooks/github": ["post"],
        "/hooks/{wf}": ["post"],
        "/workflows/{wf}/triggers": ["get"],
        "/inbox": ["get"],
        "/inbox/emails": ["get"],
        "/runs/{run_id}/steps/{step}/approve": ["post"],
        "/runs/{run_id}/steps/{step}/reject": ["post"],
        "/slack/interactions": ["post"],
        "/approvals/{token}": ["get", "post"],
    }
    assert "202" in document["paths"]["/workflows/{wf}/runs"]["post"]["responses"]
