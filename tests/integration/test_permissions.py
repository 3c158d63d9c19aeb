"""Per-workflow permissions through the API handler on moto: each action allowed and refused.

`guarded` (tests/fixtures/permissions) lets team platform or ops@example.com start, team platform
cancel, ops@example.com retry and pause, and any team member skip; `open` names no permissions.
A refusal is 403 NotAllowed naming what the action needs, and leaves no trace of the action.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.http import ApiServer
from flowdeck.stores.items import from_item
from lambdas.api import lambda_handler
from lambdas.routes.decisions import pause_decisions
from tests.integration.conftest import api_on_moto
from tests.integration.test_api import TABLE, Api, assert_error
from tests.integration.test_worker import FakeStepFunctions

WORKFLOWS = Path(__file__).parent.parent / "fixtures" / "permissions"
RUN_ID = "20261121-101500-abcd0123"
PLAN = [{"id": "build", "kind": "run"}, {"id": "ship", "kind": "run"}]
OPS, JANE, SAM, QUINN, OUTSIDER = (
    "ops@example.com",
    "jane@example.com",
    "sam@example.com",
    "quinn@example.com",
    "outsider@example.com",
)


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[Api]:
    """The API on moto over the permissions fixtures (teams.yaml included)."""
    with api_on_moto(monkeypatch, WORKFLOWS) as (ddb, sfn):
        yield Api(ddb, sfn, lambda_context)


def run_item(api: Api, run_id: str = RUN_ID, sk: str = "RUN") -> dict[str, Any]:
    found = api.ddb.get_item(TableName=TABLE, Key={"pk": {"S": run_id}, "sk": {"S": sk}})
    return from_item(found["Item"])


def seed_running(api: Api) -> None:
    api.seed_run(RUN_ID, "guarded", "2026-11-21T10:15:00Z", status="running", plan=PLAN)
    api.seed_step(RUN_ID, "build", status="running", attempt=1)


def seed_failed(api: Api) -> None:
    api.seed_run(RUN_ID, "guarded", "2026-11-21T10:15:00Z", status="failed", plan=PLAN, inputs_json="{}")
    api.seed_step(RUN_ID, "build", status="failed", error="StepFailed", attempt=1)


def seed_paused(api: Api) -> None:
    """`build` failed and waits for Retry step / Skip step (on_failure: pause, allow_skip: true)."""
    api.seed_run(RUN_ID, "guarded", "2026-11-21T10:15:00Z", status="waiting", plan=PLAN)
    attempt = {"attempt": 1, "status": "failed", "error": "StepFailed", "cause": "exit code 1"}
    api.seed_step(
        RUN_ID,
        "build",
        status="waiting",
        attempt=1,
        error="StepFailed",
        wait_token="wait-token-1",
        allow_skip=True,
        **{"attempt#1": attempt},
    )


@pytest.fixture
def answered(api: Api) -> FakeStepFunctions:
    """Step Functions as the decisions see it: records the answer to the paused step's token."""
    sfn = FakeStepFunctions()
    pause_decisions().sfn = sfn
    return sfn


def start(api: Api, user: str | None, workflow: str = "guarded", **body: Any) -> tuple[int, Any]:
    return api.call("POST", f"/workflows/{workflow}/runs", body=json.dumps(body), user=user)


# -- start ----------------------------------------------------------------------------------------


def test_start_allowed_for_a_member_of_a_named_team(api):
    status, body = start(api, JANE)

    assert status == 202, body
    assert run_item(api, body["run_id"])["started_by"] == JANE


def test_start_allowed_for_a_named_user_whatever_the_case_of_the_address(api):
    status, body = start(api, "Ops@Example.COM")

    assert status == 202, body


def test_start_refused_names_what_it_needs_and_starts_nothing(api):
    message = assert_error(start(api, QUINN, idempotency_key="k1"), 403, "NotAllowed")

    assert (
        message == "start of guarded needs team platform or user ops@example.com (you are quinn@example.com)"
    )
    assert api.executions("guarded") == []
    status, page = api.call("GET", "/runs", query={"workflow": "guarded"}, user=OPS)
    assert (status, page["runs"]) == (200, [])


def test_start_refused_to_an_anonymous_caller(api):
    message = assert_error(start(api, None), 403, "NotAllowed")

    assert message.endswith("(you are anonymous)")


def test_anyone_may_start_a_workflow_without_permissions(api):
    assert start(api, None, workflow="open")[0] == 202
    assert start(api, OUTSIDER, workflow="open")[0] == 202


# -- cancel ---------------------------------------------------------------------------------------


def test_cancel_allowed_for_a_team_member(api):
    seed_running(api)

    status, body = api.call("POST", f"/runs/{RUN_ID}/cancel", body="{}", user=SAM)

    assert status == 202, body
    assert run_item(api)["cancelled_by"] == SAM


def test_cancel_refused_records_no_cancel(api):
    seed_running(api)

    message = assert_error(api.call("POST", f"/runs/{RUN_ID}/cancel", body="{}", user=OPS), 403, "NotAllowed")

    assert message == "cancel of guarded needs team platform (you are ops@example.com)"
    run = run_item(api)
    assert run["status"] == "running"
    assert "cancel_requested_at" not in run and "cancelled_by" not in run


def test_force_cancel_refused_too(api):
    seed_running(api)

    answer = api.call("POST", f"/runs/{RUN_ID}/cancel", body=json.dumps({"mode": "force"}), user=QUINN)

    assert_error(answer, 403, "NotAllowed")
    assert "cancel_requested_at" not in run_item(api)


# -- retry ----------------------------------------------------------------------------------------


def test_retry_allowed_for_the_named_user(api):
    seed_failed(api)

    status, body = api.call("POST", f"/runs/{RUN_ID}/retry", body="{}", user=OPS)

    assert status == 202, body
    assert body["retry_of"] == RUN_ID
    assert run_item(api)["retries"] == [body["run_id"]]


def test_retry_refused_starts_no_run(api):
    seed_failed(api)

    message = assert_error(api.call("POST", f"/runs/{RUN_ID}/retry", body="{}", user=JANE), 403, "NotAllowed")

    assert message == "retry of guarded needs user ops@example.com (you are jane@example.com)"
    assert api.executions("guarded") == []
    assert "retries" not in run_item(api)


# -- a step paused on failure: retry step and skip step ------------------------------------------


def test_skip_allowed_for_any_team_member(api, answered):
    seed_paused(api)

    status, body = api.call("POST", f"/runs/{RUN_ID}/steps/build/skip", body="{}", user=QUINN)

    assert status == 202, body
    assert run_item(api, sk="STEP#build")["status"] == "skipped"
    assert [kind for kind, _ in answered.answers()] == ["success"]


def test_skip_refused_for_someone_in_no_team_leaves_the_step_waiting(api, answered):
    seed_paused(api)

    answer = api.call("POST", f"/runs/{RUN_ID}/steps/build/skip", body="{}", user=OUTSIDER)

    message = assert_error(answer, 403, "NotAllowed")
    assert (
        message == "skip of guarded needs any member of a team in teams.yaml (you are outsider@example.com)"
    )
    step = run_item(api, sk="STEP#build")
    assert (step["status"], step.get("decisions")) == ("waiting", None)
    assert answered.answers() == []


def test_retry_step_allowed_for_the_named_user(api, answered):
    seed_paused(api)

    status, body = api.call("POST", f"/runs/{RUN_ID}/steps/build/retry", body="{}", user=OPS)

    assert (status, body["next_attempt"]) == (202, 2), body
    assert run_item(api, sk="STEP#build")["status"] == "pending"


def test_retry_step_refused_leaves_the_step_waiting(api, answered):
    seed_paused(api)

    answer = api.call("POST", f"/runs/{RUN_ID}/steps/build/retry", body="{}", user=JANE)

    assert_error(answer, 403, "NotAllowed")
    assert run_item(api, sk="STEP#build")["status"] == "waiting"
    assert answered.answers() == []


# -- pause and resume the workflow ----------------------------------------------------------------


def test_pause_and_resume_allowed_for_the_named_user(api):
    paused = api.call("PUT", "/workflows/guarded/state", body=json.dumps({"active": False}), user=OPS)
    resumed = api.call("PUT", "/workflows/guarded/state", body=json.dumps({"active": True}), user=OPS)

    assert (paused[0], paused[1]["active"], paused[1]["paused_by"]) == (200, False, OPS)
    assert (resumed[0], resumed[1]["active"]) == (200, True)


def test_pause_refused_keeps_the_workflow_active(api):
    answer = api.call("PUT", "/workflows/guarded/state", body=json.dumps({"active": False}), user=JANE)

    assert assert_error(answer, 403, "NotAllowed").startswith("pause of guarded needs user ops@example.com")
    status, workflow = api.call("GET", "/workflows/guarded", user=JANE)
    assert (status, workflow["active"], workflow["paused_by"]) == (200, True, None)


# -- the hints the page draws its buttons from ----------------------------------------------------


def test_run_view_lists_only_the_run_actions_the_caller_may_take(api):
    seed_running(api)

    mine = api.call("GET", f"/runs/{RUN_ID}", user=JANE)[1]
    theirs = api.call("GET", f"/runs/{RUN_ID}", user=QUINN)[1]

    assert mine["actions"] == ["cancel", "cancel_cleanup", "force_cancel"]
    assert theirs["actions"] == []


def test_run_view_hides_retry_from_who_may_not_retry(api):
    seed_failed(api)

    ops = api.call("GET", f"/runs/{RUN_ID}", user=OPS)[1]
    jane = api.call("GET", f"/runs/{RUN_ID}", user=JANE)[1]

    assert ops["actions"] == ["retry"]
    assert ops["steps"][0]["actions"] == ["retry_step", "retry_from_here"]
    assert jane["actions"] == []
    assert [step["actions"] for step in jane["steps"]] == [[], []]


def test_paused_step_shows_skip_to_a_team_member_and_retry_to_the_named_user(api):
    seed_paused(api)

    def build_actions(user: str) -> list[str]:
        return api.call("GET", f"/runs/{RUN_ID}", user=user)[1]["steps"][0]["actions"]

    assert build_actions(QUINN) == ["skip"]
    assert build_actions(OPS) == ["retry_step"]
    assert build_actions(OUTSIDER) == []


def test_workflow_views_list_only_the_actions_the_caller_may_take(api):
    def actions(user: str | None) -> dict[str, list[str]]:
        listed = api.call("GET", "/workflows", user=user)[1]["workflows"]
        return {w["name"]: w["actions"] for w in listed}

    assert actions(OPS) == {"guarded": ["start", "pause"], "open": ["start", "pause"]}
    assert actions(JANE) == {"guarded": ["start"], "open": ["start", "pause"]}
    assert actions(None) == {"guarded": [], "open": ["start", "pause"]}
    assert api.call("GET", "/workflows/guarded", user=JANE)[1]["actions"] == ["start"]
    # The rules themselves are part of the definition the API shows.
    definition = api.call("GET", "/workflows/guarded", user=JANE)[1]["definition"]
    assert definition["permissions"]["cancel"] == {"users": [], "groups": ["platform"], "any_member": False}


# -- the CLI goes through the same API --------------------------------------------------------------


def test_cli_cancel_refused_prints_what_it_needs_and_cancels_nothing(api):
    seed_running(api)

    with ApiServer(lambda_handler, port=0) as server:
        runner = CliRunner(env={"FLOWDECK_API": server.url, "FLOWDECK_USER": QUINN, "COLUMNS": "200"})
        refused = runner.invoke(app, ["cancel", RUN_ID, "--force"])
        started = runner.invoke(app, ["run", "guarded"])

    assert refused.exit_code == 1
    assert "cancel of guarded needs team platform (you are quinn@example.com)" in refused.output
    assert "cancel_requested_at" not in run_item(api)
    assert started.exit_code == 1
    assert "start of guarded needs team platform or user ops@example.com" in started.output
    assert api.executions("guarded") == []


def test_openapi_documents_the_403_of_each_guarded_action(api):
    status, document = api.call("GET", "/openapi.json")
    guarded = {
        ("/workflows/{wf}/runs", "post"): "start",
        ("/runs/{run_id}/cancel", "post"): "cancel",
        ("/runs/{run_id}/retry", "post"): "retry",
        ("/runs/{run_id}/steps/{step}/retry", "post"): "retry",
        ("/runs/{run_id}/steps/{step}/skip", "post"): "skip",
        ("/workflows/{wf}/state", "put"): "pause",
    }

    assert status == 200
    for (path, method), action in guarded.items():
        forbidden = document["paths"][path][method]["responses"]["403"]
        assert forbidden["description"].startswith(f"NotAllowed: the workflow's `permissions.{action}`")
        assert forbidden["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorBody"
        }
