"""Signed triggers through the API handler on moto: webhook and GitHub deliveries, refusals, history."""

from __future__ import annotations

import base64
import json
import re
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from flowdeck.catalog import Catalog
from flowdeck.cli.main import app
from flowdeck.config import get_settings
from flowdeck.constants import MAX_REQUEST_BODY_BYTES
from flowdeck.local.http import ApiServer
from flowdeck.stores.schema import create_deliveries_table_kwargs, create_table_kwargs
from flowdeck.triggers.signatures import sign
from lambdas.api import lambda_handler
from lambdas.deps import run_service
from tests.integration.test_api import api_event

WORKFLOWS = Path(__file__).parent.parent / "fixtures" / "triggers"
RUNS_TABLE = "flowdeck-runs-hooks"
DELIVERIES_TABLE = "flowdeck-deliveries-hooks"
ARN_PREFIX = "arn:aws:states:us-east-1:123456789012:stateMachine:flowdeck-"
PASS_DEFINITION = json.dumps({"StartAt": "Done", "States": {"Done": {"Type": "Pass", "End": True}}})
DEPLOY_SECRET = "s3cr3t-deploy"
GITHUB_SECRET = "s3cr3t-github"
COMMIT = "9fceb02d0ae598e95dc970b74767f19372d61af8"


class Hooks:
    """Posts signed deliveries to the handler and reads what moto recorded."""

    def __init__(self, sfn: Any, context: Any) -> None:
        self.sfn = sfn
        self.context = context

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        return self.invoke(api_event(method, path, user=None, **kwargs))

    def invoke(self, event: dict[str, Any]) -> tuple[int, Any]:
        answer = lambda_handler(event, self.context)
        return answer["statusCode"], json.loads(answer["body"])

    def webhook(
        self, workflow: str, body: dict[str, Any], secret: str | None = DEPLOY_SECRET, **headers: str
    ) -> tuple[int, Any]:
        raw = json.dumps(body)
        if secret is not None:
            headers.setdefault("X-Flowdeck-Signature", sign(secret, raw.encode()))
        return self.call("POST", f"/hooks/{workflow}", body=raw, headers=headers)

    def github(
        self, event: str, payload: dict[str, Any], delivery: str, secret: str = GITHUB_SECRET
    ) -> tuple[int, Any]:
        raw = json.dumps(payload)
        headers = {
            "X-GitHub-Event": event,
            "X-GitHub-Delivery": delivery,
            "X-Hub-Signature-256": sign(secret, raw.encode()),
        }
        return self.call("POST", "/hooks/github", body=raw, headers=headers)

    def executions(self, workflow: str) -> list[dict[str, Any]]:
        listed = self.sfn.list_executions(stateMachineArn=ARN_PREFIX + workflow)["executions"]
        return [
            json.loads(self.sfn.describe_execution(executionArn=e["executionArn"])["input"]) for e in listed
        ]

    def deliveries(self, workflow: str) -> list[dict[str, Any]]:
        status, body = self.call("GET", f"/workflows/{workflow}/triggers")
        assert status == 200, body
        return body["deliveries"]


@pytest.fixture
def hooks(monkeypatch: pytest.MonkeyPatch, lambda_context: Any) -> Iterator[Hooks]:
    monkeypatch.setenv("FLOWDECK_RUNS_TABLE", RUNS_TABLE)
    monkeypatch.setenv("FLOWDECK_DELIVERIES_TABLE", DELIVERIES_TABLE)
    monkeypatch.setenv("FLOWDECK_WORKFLOWS_DIR", str(WORKFLOWS))
    monkeypatch.setenv("FLOWDECK_STATE_MACHINE_ARN_PREFIX", ARN_PREFIX)
    monkeypatch.delenv("FLOWDECK_AWS_ENDPOINT_URL", raising=False)
    get_settings.cache_clear()
    run_service.cache_clear()
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_table_kwargs(RUNS_TABLE))
        ddb.create_table(**create_deliveries_table_kwargs(DELIVERIES_TABLE))
        sfn = boto3.client("stepfunctions", region_name="us-east-1")
        for name in Catalog.from_dir(WORKFLOWS).names():
            sfn.create_state_machine(
                name=f"flowdeck-{name}",
                definition=PASS_DEFINITION,
                roleArn="arn:aws:iam::123456789012:role/sfn",
            )
        secrets = boto3.client("secretsmanager", region_name="us-east-1")
        secrets.create_secret(Name="flowdeck/webhooks/deploy-hook", SecretString=DEPLOY_SECRET)
        secrets.create_secret(Name="flowdeck/webhooks/github", SecretString=GITHUB_SECRET)
        yield Hooks(sfn, lambda_context)
    get_settings.cache_clear()
    run_service.cache_clear()


def push(branch: str = "main", repo: str = "acme/infra", **fields: Any) -> dict[str, Any]:
    """A push event as GitHub sends it (the fields Flowdeck reads, and some it does not)."""
    return {
        "ref": f"refs/heads/{branch}",
        "before": "0" * 39 + "1",
        "after": COMMIT,
        "repository": {"full_name": repo, "name": repo.split("/")[1]},
        "pusher": {"name": "octocat", "email": "octocat@example.com"},
        "head_commit": {"id": COMMIT, "message": "Fix all the things"},
    } | fields


# -- POST /hooks/{wf} ---------------------------------------------------------------------------
def test_signed_webhook_starts_a_run_with_mapped_inputs(hooks: Hooks) -> None:
    status, body = hooks.webhook("hooked", {"env": "production", "release": {"tag": "v1.2.3"}, "extra": 1})

    assert status == 202
    [started] = hooks.executions("hooked")
    assert started == {
        "inputs": {"environment": "production", "version": "v1.2.3"},
        "trigger": "webhook",
        "started_by": "webhook:deploy-hook",
    }
    [delivery] = hooks.deliveries("hooked")
    assert (delivery["trigger"], delivery["outcome"], delivery["run_id"]) == (
        "webhook",
        "started",
        body["run_id"],
    )


def test_a_path_that_finds_nothing_leaves_the_default(hooks: Hooks) -> None:
    status, _ = hooks.webhook("hooked", {"env": "staging"})

    assert status == 202
    assert hooks.executions("hooked")[0]["inputs"] == {"environment": "staging", "version": "latest"}


def test_base64_encoded_body_is_verified_as_sent(hooks: Hooks) -> None:
    raw = json.dumps({"env": "staging"}).encode()
    event = api_event(
        "POST",
        "/hooks/hooked",
        body=base64.b64encode(raw).decode(),
        user=None,
        headers={"X-Flowdeck-Signature": sign(DEPLOY_SECRET, raw)},
    )
    event["isBase64Encoded"] = True

    assert hooks.invoke(event)[0] == 202


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"X-Flowdeck-Signature": sign("not-the-secret", b'{"env": "production"}')}, "bad signature"),
        ({"X-Flowdeck-Signature": "sha256=" + "0" * 63}, "bad signature"),
        ({"X-Flowdeck-Signature": "sha1=" + "0" * 40}, "bad signature"),
        ({}, "missing X-Flowdeck-Signature"),
    ],
    ids=["wrong-secret", "short", "wrong-algorithm", "missing"],
)
def test_bad_or_missing_signature_is_401_starts_nothing_and_is_recorded(
    hooks: Hooks, headers: dict[str, str], reason: str
) -> None:
    status, body = hooks.webhook("hooked", {"env": "production"}, secret=None, **headers)

    assert (status, body["error"]) == (401, "Unauthorized")
    assert hooks.executions("hooked") == []
    [delivery] = hooks.deliveries("hooked")
    assert (delivery["outcome"], delivery["status_code"]) == ("refused", 401)
    assert delivery["reason"].startswith(reason)
    assert delivery["source"] == "webhook from 127.0.0.1"
    assert "run_id" not in delivery


def test_body_changed_after_signing_is_refused(hooks: Hooks) -> None:
    signature = sign(DEPLOY_SECRET, json.dumps({"env": "staging"}).encode())

    status, _ = hooks.webhook(
        "hooked", {"env": "production"}, secret=None, **{"X-Flowdeck-Signature": signature}
    )

    assert status == 401
    assert hooks.executions("hooked") == []


def test_a_secret_that_does_not_exist_refuses_with_401_not_500(hooks: Hooks) -> None:
    status, body = hooks.webhook("unset", {}, secret="anything")

    assert (status, body["error"]) == (401, "Unauthorized")
    [delivery] = hooks.deliveries("unset")
    assert delivery["reason"] == "secret not found: flowdeck/webhooks/never-created"


def test_replayed_delivery_answers_the_same_run_and_starts_one(hooks: Hooks) -> None:
    payload = {"env": "staging", "release": {"tag": "v2"}}

    first = hooks.webhook("hooked", payload, **{"X-Flowdeck-Delivery": "evt-0001"})
    second = hooks.webhook("hooked", payload, **{"X-Flowdeck-Delivery": "evt-0001"})

    assert first == (202, {"run_id": first[1]["run_id"], "duplicate": False})
    assert second == (202, {"run_id": first[1]["run_id"], "duplicate": True})
    assert len(hooks.executions("hooked")) == 1
    outcomes = [(d["outcome"], d["delivery_id"], d["run_id"]) for d in hooks.deliveries("hooked")]
    assert sorted(outcomes) == [
        ("duplicate", "evt-0001", first[1]["run_id"]),
        ("started", "evt-0001", first[1]["run_id"]),
    ]


def test_webhook_and_push_run_ids_are_time_first_and_the_same_at_every_redelivery(hooks: Hooks) -> None:
    before = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    hook_ids = [hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "evt-7"})[1]["run_id"]]
    push_ids = [hooks.github("push", push("main"), "d-7")[1]["runs"][0]["run_id"]]
    time.sleep(1.1)  # a redelivery a second later still names the run by the first sighting
    hook_ids.append(
        hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "evt-7"})[1]["run_id"]
    )
    push_ids.append(hooks.github("push", push("main"), "d-7")[1]["runs"][0]["run_id"])
    other = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "evt-8"})[1]["run_id"]

    assert hook_ids[0] == hook_ids[1] and push_ids[0] == push_ids[1]
    assert re.fullmatch(r"\d{8}-\d{6}-webhook-[0-9a-f]{12}", hook_ids[0])
    assert re.fullmatch(r"\d{8}-\d{6}-git-[0-9a-f]{12}", push_ids[0])
    assert before <= hook_ids[0] < other  # sortable: a later delivery sorts after
    assert len(hooks.executions("hooked")) == 2 and len(hooks.executions("pushed")) == 1


def test_inputs_that_do_not_validate_are_422_and_recorded(hooks: Hooks) -> None:
    status, body = hooks.webhook("hooked", {"env": "moon"})

    assert (status, body["error"]) == (422, "InvalidInputs")
    assert "inputs.environment" in body["message"]
    assert hooks.executions("hooked") == []
    assert hooks.deliveries("hooked")[0]["status_code"] == 422


def test_a_body_that_is_not_json_is_400(hooks: Hooks) -> None:
    raw = "env=production"
    status, body = hooks.call(
        "POST", "/hooks/hooked", body=raw, headers={"X-Flowdeck-Signature": sign(DEPLOY_SECRET, raw.encode())}
    )

    assert (status, body["error"]) == (400, "BadRequest")
    assert hooks.executions("hooked") == []


def test_a_malformed_delivery_id_is_400(hooks: Hooks) -> None:
    status, body = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "no spaces allowed"})

    assert (status, body["error"]) == (400, "BadRequest")
    assert hooks.executions("hooked") == []


def test_unknown_workflow_is_404(hooks: Hooks) -> None:
    status, body = hooks.webhook("nope", {})

    assert (status, body["error"]) == (404, "WorkflowNotFound")


def test_workflow_without_a_webhook_trigger_is_404_and_recorded(hooks: Hooks) -> None:
    status, body = hooks.webhook("unhooked", {})

    assert (status, body["error"]) == (404, "WorkflowNotFound")
    assert "no webhook trigger" in body["message"]
    assert hooks.executions("unhooked") == []
    assert hooks.deliveries("unhooked")[0]["outcome"] == "refused"


def test_oversized_webhook_body_is_413(hooks: Hooks) -> None:
    status, body = hooks.webhook("hooked", {"env": "x" * MAX_REQUEST_BODY_BYTES})

    assert (status, body["error"]) == (413, "PayloadTooLarge")


# -- POST /hooks/github -------------------------------------------------------------------------
def test_push_to_a_watched_branch_starts_the_workflow(hooks: Hooks) -> None:
    status, body = hooks.github("push", push("main"), "72d3162e-cc78-11e3-81ab-4c9367dc0958")

    assert status == 202
    [started] = hooks.executions("pushed")
    assert started == {
        "inputs": {"commit": COMMIT, "ref": "refs/heads/main"},
        "trigger": "git",
        "started_by": "octocat",
        "trigger_detail": "main @ 9fceb02",
    }
    assert body["runs"] == [{"workflow": "pushed", "outcome": "started", "run_id": body["runs"][0]["run_id"]}]
    [delivery] = hooks.deliveries("pushed")
    assert (delivery["trigger"], delivery["outcome"]) == ("git", "started")
    assert delivery["source"] == "octocat -> acme/infra@refs/heads/main"


def test_branch_patterns_and_repo_case_match(hooks: Hooks) -> None:
    status, _ = hooks.github("push", push("release/2026.11", repo="Acme/Infra"), "d-release")

    assert status == 202
    assert hooks.executions("pushed")[0]["inputs"]["ref"] == "refs/heads/release/2026.11"


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (push("feature/x"), "branch 'feature/x' is not one of main, release/*"),
        (push(ref="refs/tags/v1"), "refs/tags/v1 is not a branch"),
        (push(deleted=True, after="0" * 40), "refs/heads/main was deleted"),
    ],
    ids=["other-branch", "tag", "deleted-branch"],
)
def test_push_that_does_not_match_starts_nothing_and_is_recorded_ignored(
    hooks: Hooks, payload: dict[str, Any], reason: str
) -> None:
    status, body = hooks.github("push", payload, "d-ignored")

    assert status == 200
    assert body["runs"] == [{"workflow": "pushed", "outcome": "ignored", "reason": reason}]
    assert hooks.executions("pushed") == []
    [delivery] = hooks.deliveries("pushed")
    assert (delivery["outcome"], delivery["reason"]) == ("ignored", reason)


def test_push_to_another_repo_concerns_no_workflow(hooks: Hooks) -> None:
    status, body = hooks.github("push", push(repo="acme/other"), "d-other")

    assert (status, body["runs"]) == (200, [])
    assert hooks.deliveries("pushed") == []


def test_forged_github_signature_is_401_and_recorded_for_the_repo_watchers(hooks: Hooks) -> None:
    status, body = hooks.github("push", push("main"), "d-forged", secret="guessed")

    assert (status, body["error"]) == (401, "Unauthorized")
    assert hooks.executions("pushed") == []
    [delivery] = hooks.deliveries("pushed")
    assert (delivery["outcome"], delivery["delivery_id"]) == ("refused", "d-forged")
    assert delivery["reason"].startswith("bad signature")


def test_redelivered_push_starts_one_run(hooks: Hooks) -> None:
    first = hooks.github("push", push("main"), "d-same")
    second = hooks.github("push", push("main"), "d-same")

    assert first[1]["runs"][0]["run_id"] == second[1]["runs"][0]["run_id"]
    assert second[1]["runs"][0]["outcome"] == "duplicate"
    assert len(hooks.executions("pushed")) == 1


def test_ping_answers_200_and_starts_nothing(hooks: Hooks) -> None:
    status, body = hooks.github(
        "ping", {"zen": "Keep it simple.", "repository": {"full_name": "acme/infra"}}, "d-ping"
    )

    assert (status, body["runs"]) == (200, [])
    assert hooks.executions("pushed") == []
    assert hooks.deliveries("pushed")[0]["reason"] == "ping: GitHub reached Flowdeck"


def test_form_encoded_push_is_read_from_its_payload_field(hooks: Hooks) -> None:
    raw = urlencode({"payload": json.dumps(push("main"))})
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": "d-form",
        "X-Hub-Signature-256": sign(GITHUB_SECRET, raw.encode()),
    }
    event = api_event("POST", "/hooks/github", body=raw, headers=headers, user=None)

    assert hooks.invoke(event)[0] == 202
    assert hooks.executions("pushed")[0]["started_by"] == "octocat"


# -- GET /workflows/{wf}/triggers ---------------------------------------------------------------
def test_trigger_view_lists_triggers_with_endpoints_and_newest_deliveries_first(hooks: Hooks) -> None:
    hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "first"})
    hooks.webhook("hooked", {"env": "staging"}, secret="wrong", **{"X-Flowdeck-Delivery": "second"})

    status, body = hooks.call("GET", "/workflows/hooked/triggers", query={"limit": "1"})

    assert status == 200
    assert body["triggers"] == [
        {
            "webhook": {
                "secret": "deploy-hook",
                "inputs": {"environment": "$.env", "version": "$.release.tag"},
                "require_timestamp": False,
            },
            "endpoint": "/hooks/hooked",
        }
    ]
    assert [d["delivery_id"] for d in body["deliveries"]] == ["second"]


def test_trigger_view_of_unknown_workflow_is_404(hooks: Hooks) -> None:
    status, body = hooks.call("GET", "/workflows/nope/triggers")

    assert (status, body["error"]) == (404, "WorkflowNotFound")


# -- flowdeck triggers ----------------------------------------------------------------------------
def test_cli_triggers_prints_triggers_and_deliveries(hooks: Hooks) -> None:
    hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "cli-ok"})
    hooks.webhook("hooked", {"env": "staging"}, secret="wrong", **{"X-Flowdeck-Delivery": "cli-forged"})

    with ApiServer(lambda_handler, port=0) as server:
        runner = CliRunner(env={"FLOWDECK_API": server.url, "COLUMNS": "200"})
        table = runner.invoke(app, ["triggers", "hooked"])
        as_json = runner.invoke(app, ["triggers", "hooked", "--json", "--limit", "1"])
        missing = runner.invoke(app, ["triggers", "nope"])

    assert table.exit_code == 0, table.output
    for text in (
        "webhook",
        "POST /hooks/hooked",
        "cli-ok",
        "started",
        "cli-forged",
        "refused",
        "bad signature",
    ):
        assert text in table.stdout
    assert [d["delivery_id"] for d in json.loads(as_json.stdout)["deliveries"]] == ["cli-forged"]
    assert missing.exit_code == 1
    assert "nope" in missing.output


def test_history_that_cannot_be_written_does_not_block_a_start(
    hooks: Hooks, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("FLOWDECK_DELIVERIES_TABLE", "no-such-table")
    get_settings.cache_clear()

    status, body = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "lost-history"})

    assert (status, body["duplicate"]) == (202, False)
    assert len(hooks.executions("hooked")) == 1


# -- readable at once, and paused workflows -------------------------------------------------------
def test_webhook_and_push_runs_are_readable_the_moment_the_delivery_is_answered(hooks: Hooks) -> None:
    _, hooked = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "d-read"})
    _, pushed = hooks.github("push", push("main"), "d-read-push")

    for run_id, trigger, by in (
        (hooked["run_id"], "webhook", "webhook:deploy-hook"),
        (pushed["runs"][0]["run_id"], "git", "octocat"),
    ):
        status, run = hooks.call("GET", f"/runs/{run_id}")
        assert status == 200, run
        assert (run["status"], run["trigger"], run["started_by"]) == ("running", trigger, by)
        assert run["steps"] and {s["status"] for s in run["steps"]} == {"pending"}


def test_deliveries_to_a_paused_workflow_start_nothing_and_are_recorded_refused(hooks: Hooks) -> None:
    for workflow in ("hooked", "pushed"):
        status, _ = hooks.call(
            "PUT", f"/workflows/{workflow}/state", body=json.dumps({"active": False, "reason": "freeze"})
        )
        assert status == 200

    status, refused = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "d-paused"})
    assert (status, refused["error"]) == (409, "WorkflowPaused")
    status, body = hooks.github("push", push("main"), "d-paused-push")
    assert status == 200
    [result] = body["runs"]
    assert result["outcome"] == "refused" and "freeze" in result["reason"]

    assert hooks.executions("hooked") == [] and hooks.executions("pushed") == []
    for workflow, trigger in (("hooked", "webhook"), ("pushed", "git")):
        [delivery] = hooks.deliveries(workflow)
        assert (delivery["trigger"], delivery["outcome"], delivery["status_code"]) == (
            trigger,
            "refused",
            409,
        )
        assert "paused" in delivery["reason"] and "freeze" in delivery["reason"]

    hooks.call("PUT", "/workflows/hooked/state", body='{"active": true}')
    status, _ = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "d-resumed"})
    assert status == 202 and len(hooks.executions("hooked")) == 1


def test_cli_pause_and_resume_and_the_refusal_in_the_trigger_history(hooks: Hooks) -> None:
    with ApiServer(lambda_handler, port=0) as server:
        runner = CliRunner(env={"FLOWDECK_API": server.url, "COLUMNS": "200"})
        paused = runner.invoke(app, ["pause", "hooked", "--reason", "release freeze"])
        again = runner.invoke(app, ["pause", "hooked"])
        status, _ = hooks.webhook("hooked", {"env": "staging"}, **{"X-Flowdeck-Delivery": "cli-paused"})
        history = runner.invoke(app, ["triggers", "hooked"])
        resumed = runner.invoke(app, ["resume", "hooked", "--json"])
        unknown = runner.invoke(app, ["pause", "nope"])

    assert paused.exit_code == 0, paused.output
    assert "hooked is paused by" in paused.output and "release freeze" in paused.output
    assert "(unchanged)" in again.output and "release freeze" in again.output
    assert status == 409
    assert "cli-paused" in history.output and "refused" in history.output and "paused" in history.output
    assert resumed.exit_code == 0 and json.loads(resumed.output)["active"] is True
    assert unknown.exit_code == 1 and "nope" in unknown.output
