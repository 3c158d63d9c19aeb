"""Slack approvals end to end: the production deploy waits for two people, one by e-mail link, one
by a signed Slack click; a local stand-in for Slack's Web API records the message and its updates."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.approvals.slack.blocks import APPROVE_ACTION, OPEN_ACTION, REJECT_ACTION
from flowdeck.cli.approvals import email_link
from flowdeck.cli.main import app
from flowdeck.config import get_settings
from flowdeck.local.stack import LocalStack, free_port
from lambdas.deps import run_service
from lambdas.live_deps import live_service
from tests.e2e.conftest import start, steps_by_id, wait
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.e2e

BOT_TOKEN = "xoxb-e2e-token"
SIGNING_SECRET = "e2e-signing-secret-0123456789abcdef"
JANE, SAM = "jane@example.com", "sam@example.com"
# workflows/teams.yaml maps U0JANE and U0SAM; Mallory is known to Slack (users.info) but approves nothing.
MALLORY = "U0MALLORY"


@pytest.fixture(scope="module")
def slack() -> Iterator[FakeSlack]:
    with FakeSlack(token=BOT_TOKEN, users={MALLORY: "mallory@example.com"}) as fake:
        yield fake


@pytest.fixture(scope="module")
def stack(
    workflows_dir: Path, tmp_path_factory: pytest.TempPathFactory, slack: FakeSlack
) -> Iterator[LocalStack]:
    """A local stack whose Slack is the fake: its API URL in the environment, the secret set by the CLI."""
    saved = dict(os.environ)
    os.environ["FLOWDECK_SLACK_API_URL"] = slack.api_url
    local = LocalStack(
        workflows_dir,
        port=free_port(),
        workers=1,
        data_dir=tmp_path_factory.mktemp("slack"),
        keep_state=False,
    )
    with local:
        credentials = json.dumps({"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET})
        result = CliRunner().invoke(
            app, ["secrets", "set-slack", "--endpoint-url", local.endpoint_url], input=credentials + "\n"
        )
        assert result.exit_code == 0, result.output
        yield local
    # A stack points this process's settings at itself: give the session's stack its own back.
    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()
    run_service.cache_clear()
    live_service.cache_clear()


@pytest.fixture(scope="module")
def api(stack: LocalStack) -> Iterator[httpx.Client]:
    with httpx.Client(
        base_url=stack.api_url, headers={"X-Flowdeck-User": "e2e@example.com"}, timeout=30
    ) as client:
        yield client


class Slack:
    """Clicks as Slack sends them: form-encoded `payload=<json>`, signed with the app's secret."""

    def __init__(self, api: httpx.Client, fake: FakeSlack, posted: dict[str, Any]) -> None:
        self.api = api
        self.fake = fake
        self.posted = posted  # the chat.postMessage answer: {channel, ts}

    def body(self, run_id: str, user: str, decision: str = "approve") -> str:
        action = APPROVE_ACTION if decision == "approve" else REJECT_ACTION
        value = json.dumps({"run_id": run_id, "step": "approval", "decision": decision})
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "container": {
                "type": "message",
                "channel_id": self.posted["channel"],
                "message_ts": self.posted["ts"],
            },
            "response_url": self.fake.response_url(user),
            "actions": [{"action_id": action, "block_id": "flowdeck_approval", "value": value}],
        }
        return urlencode({"payload": json.dumps(payload)})

    def post(self, body: str, timestamp: int | None = None, secret: str = SIGNING_SECRET) -> httpx.Response:
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        signature = hmac.new(secret.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={signature}",
        }
        # No X-Flowdeck-User: Slack's signature is this route's only authentication.
        return httpx.post(
            f"{self.api.base_url}/slack/interactions", content=body, headers=headers, timeout=30
        )

    def click(self, run_id: str, user: str, decision: str = "approve") -> httpx.Response:
        return self.post(self.body(run_id, user, decision))

    def message(self) -> dict[str, Any]:
        return self.fake.messages[(self.posted["channel"], self.posted["ts"])]


def wait_for_slack_request(api: httpx.Client, fake: FakeSlack, run_id: str, timeout: float = 60.0) -> Slack:
    """Poll until the approval waits and its Slack message is posted and recorded on the step."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/runs/{run_id}").json()  # 404 until the state machine records the run
        step = steps_by_id(run).get("approval", {}) if "steps" in run else {}
        posted = (step.get("approval") or {}).get("slack")
        if step.get("status") == "waiting" and posted:
            return Slack(api, fake, posted)
        time.sleep(0.1)
    raise AssertionError(f"no Slack request for {run_id}: {api.get(f'/runs/{run_id}').text}")


def approval_of(api: httpx.Client, run_id: str) -> dict[str, Any]:
    """The approval step as the run view shows it, less its live duration."""
    step = dict(steps_by_id(api.get(f"/runs/{run_id}").json())["approval"])
    step.pop("duration_s", None)
    return step


def buttons(message: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["action_id"]: e for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json()["error"]


def test_production_deploy_approved_by_email_link_and_signed_slack_click(
    api: httpx.Client, stack: LocalStack, slack: FakeSlack
) -> None:
    run_id = start(api, "production-deploy", environment="production")
    clicks = wait_for_slack_request(api, slack, run_id)

    # The request: one interactive message in #approvals, with the run's link, Approve and Reject.
    (post,) = [c for c in slack.calls_of("chat.postMessage") if run_id in json.dumps(c.body)]
    assert post.token == BOT_TOKEN
    assert post.body["channel"] == "#approvals"
    posted = buttons(clicks.message())
    assert set(posted) == {OPEN_ACTION, APPROVE_ACTION, REJECT_ACTION}
    assert json.loads(posted[APPROVE_ACTION]["value"])["run_id"] == run_id
    shown = json.dumps(clicks.message()["blocks"])
    assert "Apply the plan to production: 3 to add, 1 to change, 0 to destroy?" in shown
    assert "2 approvals needed from jane@example.com, sam@example.com, team platform" in shown
    assert "Approvers: <@U0JANE> <@U0SAM>" in shown  # notified: teams.yaml knows their Slack ids
    before = approval_of(api, run_id)

    # Forged, replayed and unauthorised clicks are refused and change nothing.
    assert error_of(clicks.post(clicks.body(run_id, "U0SAM"), secret="forged")) == (401, "Unauthorized")
    replayed = clicks.post(clicks.body(run_id, "U0SAM"), timestamp=int(time.time()) - 6 * 60)
    assert error_of(replayed) == (401, "Unauthorized")
    assert error_of(clicks.click(run_id, MALLORY)) == (403, "NotAllowed")
    (told,) = slack.calls_of("response_url")
    assert "mallory@example.com may not decide" in told.body["text"]
    assert approval_of(api, run_id) == before
    assert clicks.message()["updates"] == 0

    # Sam approves in Slack (clicking twice counts once); the message shows it in place.
    first = clicks.click(run_id, "U0SAM")
    assert first.status_code == 200, first.text
    assert first.json()["by"] == SAM
    assert clicks.click(run_id, "U0SAM").status_code == 200
    assert [a["by"] for a in approval_of(api, run_id)["approval"]["approvals"]] == [SAM]
    assert "1 of 2 approvals" in json.dumps(clicks.message()["blocks"])

    # Jane approves by her e-mailed link: the second approval ends the wait and the run goes on.
    decided = httpx.post(
        email_link(stack.api_url, run_id, JANE, "approve"), data={"comment": "plan reviewed"}
    )
    assert decided.status_code == 200, decided.text
    run = wait(api, run_id, timeout=120)

    assert run["status"] == "succeeded", run
    step = steps_by_id(run)["approval"]
    assert [(d["by"], d["channel"]) for d in step["decisions"]] == [(SAM, "slack"), (JANE, "email")]
    assert steps_by_id(run)["apply"]["status"] == "succeeded"
    # One message, updated in place: both approvers, the outcome, no decision buttons any more.
    message = clicks.message()
    final = json.dumps(message["blocks"])
    assert len([c for c in slack.calls_of("chat.postMessage") if run_id in json.dumps(c.body)]) == 1
    assert message["updates"] >= 2
    assert "Approved by sam@example.com via slack" in final
    assert "Approved by jane@example.com via email" in final
    assert "_plan reviewed_" in final
    assert "2 of 2 approvals" in final
    assert set(buttons(message)) == {OPEN_ACTION}

    # A click after the step was decided: 409, and the clicker is told why.
    late = clicks.click(run_id, "U0SAM", "reject")
    assert error_of(late) == (409, "ApprovalNotWaiting")
    assert steps_by_id(api.get(f"/runs/{run_id}").json())["approval"]["status"] == "succeeded"


def test_a_slack_reject_fails_the_run_and_the_message_says_who(
    api: httpx.Client, stack: LocalStack, slack: FakeSlack
) -> None:
    run_id = start(api, "production-deploy", environment="production")
    clicks = wait_for_slack_request(api, slack, run_id)

    rejected = clicks.click(run_id, "U0JANE", "reject")
    assert rejected.status_code == 200, rejected.text
    run = wait(api, run_id, timeout=120)

    assert run["status"] == "failed"
    step = steps_by_id(run)["approval"]
    assert step["error"] == "ApprovalRejected"
    assert step["cause"] == f"rejected by {JANE}"
    apply = steps_by_id(run)["apply"]
    assert (apply["status"], apply["not_run"]) == ("skipped", "the run failed at approval")
    assert "Rejected by jane@example.com via slack" in json.dumps(clicks.message()["blocks"])
    assert set(buttons(clicks.message())) == {OPEN_ACTION}


def test_cancelling_a_waiting_approval_rewrites_its_slack_message_and_empties_the_inbox(
    api: httpx.Client, stack: LocalStack, slack: FakeSlack
) -> None:
    run_id = start(api, "production-deploy", environment="production")
    clicks = wait_for_slack_request(api, slack, run_id)
    assert any(
        a["run_id"] == run_id
        for a in api.get("/inbox", headers={"X-Flowdeck-User": JANE}).json()["approvals"]
    )

    cancel = api.post(f"/runs/{run_id}/cancel", json={"reason": "wrong branch"})
    assert cancel.status_code in (200, 202), cancel.text
    assert wait(api, run_id, timeout=120)["status"] == "cancelled"

    # The run-events reaction (the local stack's stream poller) rewrites the message: poll for it.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and set(buttons(clicks.message())) != {OPEN_ACTION}:
        time.sleep(0.1)
    shown = json.dumps(clicks.message()["blocks"])
    assert set(buttons(clicks.message())) == {OPEN_ACTION}
    assert "Cancelled by e2e@example.com: wrong branch" in shown
    assert "0 of 2 approvals" in shown
    jane_waiting = api.get("/inbox", headers={"X-Flowdeck-User": JANE}).json()["approvals"]
    assert [a for a in jane_waiting if a["run_id"] == run_id] == []
    assert error_of(clicks.click(run_id, "U0JANE")) == (409, "ApprovalNotWaiting")
