"""Signed triggers on the local stack: webhook and GitHub deliveries start real runs, refusals start none."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.main import app
from flowdeck.local.stack import LocalStack
from flowdeck.triggers.signatures import sign, sign_timestamped
from tests.e2e.conftest import wait

DEPLOY_SECRET = "e2e-deploy-secret"
GITHUB_SECRET = "e2e-github-secret"
REPO = "flowdeck-e2e/hooks"
COMMIT = "b6e0fa1c6a8f1b9a0c5d2c8e1f3a4b5c6d7e8f90"


@pytest.fixture(scope="module")
def secrets(stack: LocalStack) -> None:
    """The webhook secrets, stored in the emulator's Secrets Manager by `flowdeck secrets set-webhook`."""
    for name, value in (("e2e-deploy-hook", DEPLOY_SECRET), ("github", GITHUB_SECRET)):
        result = CliRunner().invoke(
            app, ["secrets", "set-webhook", name, "--endpoint-url", stack.endpoint_url], input=value + "\n"
        )
        assert result.exit_code == 0, result.output
    stored = stack.client("secretsmanager").get_secret_value(SecretId="flowdeck/webhooks/github")
    assert stored["SecretString"] == GITHUB_SECRET


def post_webhook(
    api: httpx.Client, body: dict[str, Any], secret: str | None, **headers: str
) -> httpx.Response:
    raw = json.dumps(body).encode()
    if secret is not None:
        headers["X-Flowdeck-Signature"] = sign(secret, raw)
    return api.post(
        "/hooks/hook-deploy", content=raw, headers={"Content-Type": "application/json", **headers}
    )


def post_push(api: httpx.Client, branch: str, delivery: str, secret: str = GITHUB_SECRET) -> httpx.Response:
    raw = json.dumps(
        {
            "ref": f"refs/heads/{branch}",
            "after": COMMIT,
            "repository": {"full_name": REPO},
            "pusher": {"name": "hubot"},
        }
    ).encode()
    headers = {
        "Content-Type": "application/json",
        "X-GitHub-Event": "push",
        "X-GitHub-Delivery": delivery,
        "X-Hub-Signature-256": sign(secret, raw),
    }
    return api.post("/hooks/github", content=raw, headers=headers)


def deliveries(api: httpx.Client, workflow: str) -> dict[str, dict[str, Any]]:
    """Delivery id -> its newest record in the workflow's trigger history."""
    response = api.get(f"/workflows/{workflow}/triggers", params={"limit": 200})
    assert response.status_code == 200, response.text
    newest_first = response.json()["deliveries"]
    return {d["delivery_id"]: d for d in reversed(newest_first)}


def run_ids(api: httpx.Client, workflow: str, trigger: str) -> list[str]:
    response = api.get("/runs", params={"workflow": workflow, "trigger": trigger, "limit": 200})
    assert response.status_code == 200, response.text
    return [r["run_id"] for r in response.json()["runs"]]


def test_signed_webhook_runs_with_mapped_inputs(api: httpx.Client, secrets: None) -> None:
    response = post_webhook(api, {"env": "staging", "release": {"tag": "v9.1"}}, DEPLOY_SECRET)

    assert response.status_code == 202, response.text
    run = wait(api, response.json()["run_id"])
    assert run["status"] == "succeeded"
    assert (run["trigger"], run["started_by"]) == ("webhook", "webhook:e2e-deploy-hook")
    assert run["inputs"] == {"environment": "staging", "version": "v9.1"}


@pytest.mark.parametrize("secret", ["not-the-secret", None], ids=["bad-signature", "missing-signature"])
def test_bad_or_missing_signature_is_refused_and_recorded(
    api: httpx.Client, secrets: None, secret: str | None
) -> None:
    delivery = f"e2e-{uuid.uuid4()}"
    before = run_ids(api, "hook-deploy", "webhook")

    response = post_webhook(api, {"env": "production"}, secret, **{"X-Flowdeck-Delivery": delivery})

    assert response.status_code == 401
    assert response.json()["error"] == "Unauthorized"
    assert run_ids(api, "hook-deploy", "webhook") == before
    recorded = deliveries(api, "hook-deploy")[delivery]
    assert (recorded["outcome"], recorded["status_code"]) == ("refused", 401)


def test_timestamped_delivery_runs_and_its_replay_with_a_new_delivery_id_is_refused(
    api: httpx.Client, secrets: None
) -> None:
    raw = json.dumps({"env": "staging", "release": {"tag": "v11"}}).encode()
    timestamp = str(int(time.time()))
    signed = {
        "Content-Type": "application/json",
        "X-Flowdeck-Timestamp": timestamp,
        "X-Flowdeck-Signature": sign_timestamped(DEPLOY_SECRET, timestamp, raw),
    }
    first, replay = f"e2e-{uuid.uuid4()}", f"e2e-{uuid.uuid4()}"

    started = api.post("/hooks/hook-deploy", content=raw, headers=signed | {"X-Flowdeck-Delivery": first})
    replayed = api.post("/hooks/hook-deploy", content=raw, headers=signed | {"X-Flowdeck-Delivery": replay})

    assert started.status_code == 202, started.text
    assert wait(api, started.json()["run_id"])["inputs"]["version"] == "v11"
    assert (replayed.status_code, replayed.json()["error"]) == (401, "Unauthorized")
    recorded = deliveries(api, "hook-deploy")
    assert (recorded[first]["outcome"], recorded[replay]["outcome"]) == ("started", "refused")


def test_duplicate_delivery_starts_one_run(api: httpx.Client, secrets: None) -> None:
    delivery = f"e2e-{uuid.uuid4()}"
    body = {"env": "production", "release": {"tag": "v10"}}

    first = post_webhook(api, body, DEPLOY_SECRET, **{"X-Flowdeck-Delivery": delivery})
    wait(api, first.json()["run_id"])
    second = post_webhook(api, body, DEPLOY_SECRET, **{"X-Flowdeck-Delivery": delivery})

    assert (first.status_code, second.status_code) == (202, 202)
    assert second.json() == {"run_id": first.json()["run_id"], "duplicate": True}
    assert run_ids(api, "hook-deploy", "webhook").count(first.json()["run_id"]) == 1
    assert deliveries(api, "hook-deploy")[delivery]["outcome"] == "duplicate"


def test_github_push_to_main_runs_with_commit_and_ref(api: httpx.Client, secrets: None) -> None:
    response = post_push(api, "main", f"gh-{uuid.uuid4()}")

    assert response.status_code == 202, response.text
    [started] = response.json()["runs"]
    run = wait(api, started["run_id"])
    assert run["status"] == "succeeded"
    assert (run["trigger"], run["started_by"]) == ("git", "hubot")
    assert run["inputs"] == {"commit": COMMIT, "ref": "refs/heads/main"}
    # What started it, for history: the branch and the short commit.
    assert run["trigger_detail"] == f"main @ {COMMIT[:7]}"
    rows = api.get("/runs", params={"workflow": "hook-push", "trigger": "git"}).json()["runs"]
    assert next(r for r in rows if r["run_id"] == run["run_id"])["trigger_detail"] == f"main @ {COMMIT[:7]}"


def test_github_push_to_another_branch_is_ignored(api: httpx.Client, secrets: None) -> None:
    delivery = f"gh-{uuid.uuid4()}"
    before = run_ids(api, "hook-push", "git")

    response = post_push(api, "feature/x", delivery)

    assert response.status_code == 200
    assert run_ids(api, "hook-push", "git") == before
    recorded = deliveries(api, "hook-push")[delivery]
    assert (recorded["outcome"], recorded["reason"]) == ("ignored", "branch 'feature/x' is not one of main")


def test_forged_github_signature_is_401(api: httpx.Client, secrets: None) -> None:
    delivery = f"gh-{uuid.uuid4()}"
    before = run_ids(api, "hook-push", "git")

    response = post_push(api, "main", delivery, secret="forged")

    assert response.status_code == 401
    assert run_ids(api, "hook-push", "git") == before
    assert deliveries(api, "hook-push")[delivery]["outcome"] == "refused"


def test_console_start_with_started_by_in_its_input_is_recorded_manual(
    stack: LocalStack, api: httpx.Client
) -> None:
    sfn = stack.client("stepfunctions")
    arn = f"{stack.env['FLOWDECK_STATE_MACHINE_ARN_PREFIX']}hello"

    sfn.start_execution(
        stateMachineArn=arn, name="console-start-by-ops", input=json.dumps({"started_by": "ops-oncall"})
    )
    run = wait(api, "console-start-by-ops")

    assert (run["trigger"], run["started_by"]) == ("manual", "ops-oncall")
