"""`POST /slack/interactions` through the API handler on moto, with a local stand-in for Slack's Web API."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import boto3
import pytest
from moto import mock_aws
from typer.testing import CliRunner

from flowdeck.approvals.slack.blocks import APPROVE_ACTION, OPEN_ACTION, REJECT_ACTION
from flowdeck.approvals.slack.client import SlackApprovals, SlackDeliveryError, SlackNotConfigured
from flowdeck.cli.main import app
from flowdeck.config import get_settings
from flowdeck.stores.items import from_item, to_item
from flowdeck.stores.schema import create_table_kwargs
from lambdas.api import lambda_handler
from tests.fakes.slack import FakeSlack
from tests.integration.test_api import api_event

TABLE = "flowdeck-runs-slack"
RUN_ID = "20261121-120000-5eac0001"
STEP = "approval"
BOT_TOKEN = "xoxb-integration"
SIGNING_SECRET = "slack-signing-secret-integration"
TEAMS = """\
people:
  sam@example.com: {slack: U0SAM}
"""
# Jane is unknown to teams.yaml: her e-mail comes from her Slack profile (users.info).
SLACK_USERS = {"U0JANE": "Jane@Example.com", "U0MALLORY": "mallory@example.com"}


class SlackApi:
    """Signs and posts interactions to the handler; reads the step item and the fake Slack."""

    def __init__(self, ddb: Any, slack: FakeSlack, context: Any) -> None:
        self.ddb = ddb
        self.slack = slack
        self.context = context
        self.posted: dict[str, str] = {}

    def body(
        self, user: str, action_id: str = APPROVE_ACTION, decision: str = "approve", **extra: Any
    ) -> str:
        value = json.dumps({"run_id": RUN_ID, "step": STEP, "decision": decision})
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "container": {
                "type": "message",
                **{"channel_id": self.posted.get("channel"), "message_ts": self.posted.get("ts")},
            },
            "response_url": self.slack.response_url(user),
            "actions": [{"action_id": action_id, "block_id": "flowdeck_approval", "value": value}],
        } | extra
        return urlencode({"payload": json.dumps(payload)})

    def post(
        self,
        body: str,
        timestamp: int | None = None,
        secret: str = SIGNING_SECRET,
        base64_encoded: bool = False,
        signed_body: str | None = None,
        **headers: str,
    ) -> tuple[int, Any]:
        """Signed as Slack signs (`signed_body`: sign another body than the one sent)."""
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        base = f"v0:{stamp}:{body if signed_body is None else signed_body}"
        signed = hmac.new(secret.encode(), base.encode(), hashlib.sha256).hexdigest()
        all_headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Slack-Request-Timestamp": stamp,
            "X-Slack-Signature": f"v0={signed}",
        } | headers
        event = api_event("POST", "/slack/interactions", body=body, headers=all_headers, user=None)
        if base64_encoded:
            event.update(body=base64.b64encode(body.encode()).decode(), isBase64Encoded=True)
        answer = lambda_handler(event, self.context)
        return answer["statusCode"], json.loads(answer["body"])

    def click(self, user: str, decision: str = "approve") -> tuple[int, Any]:
        action = APPROVE_ACTION if decision == "approve" else REJECT_ACTION
        return self.post(self.body(user, action, decision))

    def step(self) -> dict[str, Any]:
        item = self.ddb.get_item(TableName=TABLE, Key={"pk": {"S": RUN_ID}, "sk": {"S": f"STEP#{STEP}"}})
        return from_item(item["Item"])

    def message(self) -> dict[str, Any]:
        return self.slack.messages[(self.posted["channel"], self.posted["ts"])]


def seed(ddb: Any, posted: dict[str, str]) -> None:
    """A run waiting at an approval step that needs jane and sam, its request posted to Slack."""
    plan = [{"id": "plan", "kind": "run"}, {"id": STEP, "kind": "approval"}, {"id": "apply", "kind": "run"}]
    run = {"pk": RUN_ID, "sk": "RUN", "kind": "run", "run_id": RUN_ID, "workflow": "production-deploy"}
    run |= {"status": "waiting", "plan": plan, "started_at": "2026-11-21T12:00:00+00:00"}
    step = {
        "pk": RUN_ID,
        "sk": f"STEP#{STEP}",
        "step": STEP,
        "kind": "approval",
        "status": "waiting",
        "wait_token": "token-" + "a" * 40,
        "approval_version": 0,
        "approval": REQUEST | {"approvals": [], "slack": posted},
    }
    for item in (run, step):
        ddb.put_item(TableName=TABLE, Item=to_item(item))


REQUEST: dict[str, Any] = {
    "approvers": {"users": ["jane@example.com", "sam@example.com"], "groups": [], "any_member": False},
    "min_approvals": 2,
    "channels": ["slack"],
    "message": "Apply 3 additions to production?",
    "link": f"http://127.0.0.1:8765/runs/{RUN_ID}",
    "deadline": "2099-01-01T00:00:00+00:00",
    "requested_at": "2026-11-21T12:00:01+00:00",
}


@pytest.fixture
def slack_api(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, lambda_context: Any) -> Iterator[SlackApi]:
    (tmp_path / "teams.yaml").write_text(TEAMS)
    with FakeSlack(token=BOT_TOKEN, users=dict(SLACK_USERS)) as slack, mock_aws():
        monkeypatch.setenv("FLOWDECK_RUNS_TABLE", TABLE)
        monkeypatch.setenv("FLOWDECK_WORKFLOWS_DIR", str(tmp_path))
        monkeypatch.setenv("FLOWDECK_SLACK_API_URL", slack.api_url)
        monkeypatch.delenv("FLOWDECK_AWS_ENDPOINT_URL", raising=False)
        get_settings.cache_clear()
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        ddb.create_table(**create_table_kwargs(TABLE))
        boto3.client("secretsmanager", region_name="us-east-1").create_secret(
            Name="flowdeck/slack",
            SecretString=json.dumps({"bot_token": BOT_TOKEN, "signing_secret": SIGNING_SECRET}),
        )
        api = SlackApi(ddb, slack, lambda_context)
        # The notifier's part, as it does it: post the request, record where it went.
        request = REQUEST | {"run_id": RUN_ID, "workflow": "production-deploy", "step": STEP}
        api.posted = SlackApprovals().post_request(request)
        seed(ddb, api.posted)
        yield api
    get_settings.cache_clear()


def buttons(message: dict[str, Any]) -> set[str]:
    return {e["action_id"] for b in message["blocks"] if b["type"] == "actions" for e in b["elements"]}


def test_the_request_is_posted_with_the_bot_token_to_the_approvals_channel(slack_api: SlackApi) -> None:
    (post,) = slack_api.slack.calls_of("chat.postMessage")

    assert post.token == BOT_TOKEN
    assert post.body["channel"] == "#approvals"
    assert buttons(slack_api.message()) == {OPEN_ACTION, APPROVE_ACTION, REJECT_ACTION}
    assert "Approvers: <@U0SAM>" in json.dumps(slack_api.message()["blocks"])  # the one teams.yaml maps


def test_two_signed_approvals_decide_the_step_and_the_message_shows_both(slack_api: SlackApi) -> None:
    status, first = slack_api.click("U0SAM")
    assert (status, first["by"], first["status"]) == (200, "sam@example.com", "waiting")
    after_one = json.dumps(slack_api.message()["blocks"])
    assert "Approved by sam@example.com via slack" in after_one
    assert "1 of 2 approvals" in after_one
    assert buttons(slack_api.message()) == {OPEN_ACTION, APPROVE_ACTION, REJECT_ACTION}

    status, second = slack_api.click("U0JANE")  # mapped through her Slack profile

    assert (status, second["by"], second["status"]) == (200, "jane@example.com", "approved")
    step = slack_api.step()
    assert step["status"] == "succeeded"
    assert [(a["by"], a["channel"]) for a in step["approval"]["approvals"]] == [
        ("sam@example.com", "slack"),
        ("jane@example.com", "slack"),
    ]
    message = slack_api.message()
    shown = json.dumps(message["blocks"])
    assert message["updates"] == 2  # the one message, updated in place twice
    assert len(slack_api.slack.calls_of("chat.postMessage")) == 1
    assert "Approved by sam@example.com" in shown and "Approved by jane@example.com" in shown
    assert "2 of 2 approvals" in shown
    assert buttons(message) == {OPEN_ACTION}


def test_the_same_slack_user_clicking_twice_counts_once(slack_api: SlackApi) -> None:
    assert slack_api.click("U0SAM")[0] == 200
    assert slack_api.click("U0SAM")[0] == 200

    step = slack_api.step()
    assert step["status"] == "waiting"
    assert [a["by"] for a in step["approval"]["approvals"]] == ["sam@example.com"]


@pytest.mark.parametrize(
    "how",
    ["forged", "replayed", "unsigned", "tampered"],
)
def test_forged_replayed_unsigned_or_tampered_clicks_are_401_and_change_nothing(
    slack_api: SlackApi, how: str
) -> None:
    before = slack_api.step()
    body = slack_api.body("U0SAM")
    if how == "forged":
        answer = slack_api.post(body, secret="not-the-signing-secret")
    elif how == "replayed":  # a genuine signature, 6 minutes old
        answer = slack_api.post(body, timestamp=int(time.time()) - 360)
    elif how == "unsigned":
        answer = slack_api.post(body, **{"X-Slack-Signature": ""})
    else:  # a genuine approve's signature on a reject
        answer = slack_api.post(slack_api.body("U0SAM", REJECT_ACTION, "reject"), signed_body=body)

    status, error = answer
    assert status == 401
    assert error["error"] == "Unauthorized"
    assert slack_api.step() == before
    assert slack_api.slack.calls_of("chat.update") == []


def test_a_slack_user_who_may_not_decide_gets_403_is_told_and_nothing_changes(slack_api: SlackApi) -> None:
    before = slack_api.step()

    status, error = slack_api.click("U0MALLORY")

    assert (status, error["error"]) == (403, "NotAllowed")
    assert slack_api.step() == before
    assert slack_api.slack.calls_of("chat.update") == []
    (reply,) = slack_api.slack.calls_of("response_url")
    assert reply.body["response_type"] == "ephemeral"
    assert "mallory@example.com may not decide" in reply.body["text"]


def test_a_click_after_the_step_was_decided_is_409(slack_api: SlackApi) -> None:
    slack_api.click("U0SAM")
    slack_api.click("U0JANE")

    status, error = slack_api.click("U0SAM", "reject")

    assert (status, error["error"]) == (409, "ApprovalNotWaiting")
    assert slack_api.step()["status"] == "succeeded"


def test_one_reject_fails_the_step_and_the_message_says_so(slack_api: SlackApi) -> None:
    status, answer = slack_api.click("U0SAM", "reject")

    assert (status, answer["status"]) == (200, "rejected")
    assert slack_api.step()["error"] == "ApprovalRejected"
    assert "Rejected by sam@example.com" in json.dumps(slack_api.message()["blocks"])
    assert buttons(slack_api.message()) == {OPEN_ACTION}


def test_a_click_is_recorded_even_when_slack_cannot_be_reached_to_update_the_message(
    slack_api: SlackApi,
) -> None:
    body = slack_api.body("U0SAM")  # teams.yaml maps U0SAM: no users.info needed
    slack_api.slack.stop()  # Slack down: chat.update fails with a connection error

    status, answer = slack_api.post(body)

    assert (status, answer["by"]) == (200, "sam@example.com")
    assert [a["by"] for a in slack_api.step()["approval"]["approvals"]] == ["sam@example.com"]


def test_posting_to_an_unreachable_slack_raises_a_delivery_error(slack_api: SlackApi) -> None:
    slack_api.slack.stop()

    with pytest.raises(SlackDeliveryError, match=r"chat\.postMessage failed: URLError"):
        SlackApprovals().post_request(
            REQUEST | {"run_id": RUN_ID, "workflow": "production-deploy", "step": STEP}
        )


def test_posting_without_the_secret_raises_slack_not_configured(slack_api: SlackApi) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId="flowdeck/slack", ForceDeleteWithoutRecovery=True
    )

    with pytest.raises(SlackNotConfigured, match="flowdeck secrets set-slack"):
        SlackApprovals().post_request(
            REQUEST | {"run_id": RUN_ID, "workflow": "production-deploy", "step": STEP}
        )


def test_base64_encoded_bodies_are_verified_as_sent(slack_api: SlackApi) -> None:
    status, answer = slack_api.post(slack_api.body("U0SAM"), base64_encoded=True)

    assert (status, answer["by"]) == (200, "sam@example.com")


def test_the_open_run_button_is_a_no_op(slack_api: SlackApi) -> None:
    before = slack_api.step()
    body = slack_api.body("U0SAM", actions=[{"action_id": OPEN_ACTION, "block_id": "flowdeck_approval"}])

    assert slack_api.post(body) == (200, {"ok": True, "ignored": True})
    assert slack_api.step() == before


def test_a_signed_but_malformed_payload_is_400(slack_api: SlackApi) -> None:
    status, error = slack_api.post("payload=%7Bnot-json")

    assert (status, error["error"]) == (400, "BadRequest")


def test_without_the_slack_secret_every_click_is_401(slack_api: SlackApi) -> None:
    boto3.client("secretsmanager", region_name="us-east-1").delete_secret(
        SecretId="flowdeck/slack", ForceDeleteWithoutRecovery=True
    )
    get_settings.cache_clear()  # a new container: no cached secret

    status, error = slack_api.click("U0SAM")

    assert (status, error["error"]) == (401, "Unauthorized")
    assert slack_api.step()["approval"]["approvals"] == []


def test_set_slack_stores_the_secret_and_refuses_incomplete_input(slack_api: SlackApi) -> None:
    runner = CliRunner()
    value = {"bot_token": "xoxb-new", "signing_secret": "new-secret"}

    done = runner.invoke(app, ["secrets", "set-slack"], input=json.dumps(value) + "\n")
    refused = runner.invoke(app, ["secrets", "set-slack"], input='{"bot_token": "xoxb-only"}\n')

    assert done.exit_code == 0, done.output
    stored = boto3.client("secretsmanager", region_name="us-east-1").get_secret_value(
        SecretId="flowdeck/slack"
    )
    assert json.loads(stored["SecretString"]) == value
    assert refused.exit_code == 2
