"""Slack approvals without a network: the blocks, the click parsing and the signature check."""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any
from urllib.parse import urlencode

import pytest

from flowdeck.approvals.directory import Directory, Person, TeamsFile
from flowdeck.approvals.slack.blocks import (
    APPROVE_ACTION,
    OPEN_ACTION,
    REJECT_ACTION,
    decided_blocks,
    escape,
    fallback_text,
    outcome,
    policy_text,
    request_blocks,
)
from flowdeck.approvals.slack.client import (
    SlackApprovals,
    SlackCredentials,
    SlackNotConfigured,
    parse_credentials,
)
from flowdeck.approvals.slack.interactions import SlackInteractions, parse_click
from flowdeck.config import Settings
from flowdeck.definition import parse_workflow
from flowdeck.errors import BadRequest, Conflict, InvalidDefinition, NotAllowed, Unauthorized

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
NOW = 1_700_000_000

REQUEST: dict[str, Any] = {
    "run_id": "20261121-120000-abcd1234",
    "workflow": "production-deploy",
    "step": "approval",
    "message": "Apply 3 additions to <production> & more?",
    "link": "http://127.0.0.1:8765/runs/20261121-120000-abcd1234",
    "deadline": "2026-11-22T12:00:00+00:00",
    "approvers": {
        "users": ["jane@example.com", "sam@example.com"],
        "groups": ["platform"],
        "any_member": False,
    },
    "min_approvals": 2,
    "approvals": [],
    "decisions": [],
    "status": "waiting",
}


def actions_of(blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [element for block in blocks if block["type"] == "actions" for element in block["elements"]]


def text_of(blocks: list[dict[str, Any]]) -> str:
    """Every text in the blocks, one string (what a reader of the message sees)."""
    return json.dumps(blocks)


# -- blocks ---------------------------------------------------------------------------------
def test_request_has_link_approve_and_reject_buttons_carrying_run_step_and_decision() -> None:
    buttons = {b["action_id"]: b for b in actions_of(request_blocks(REQUEST))}

    assert set(buttons) == {OPEN_ACTION, APPROVE_ACTION, REJECT_ACTION}
    assert buttons[OPEN_ACTION]["url"] == REQUEST["link"]
    assert buttons[APPROVE_ACTION]["style"] == "primary"
    assert buttons[REJECT_ACTION]["style"] == "danger"
    assert "confirm" in buttons[REJECT_ACTION]  # one reject fails the run: Slack asks first
    for action, decision in ((APPROVE_ACTION, "approve"), (REJECT_ACTION, "reject")):
        value = json.loads(buttons[action]["value"])
        assert value["run_id"] == REQUEST["run_id"]
        assert value["step"] == "approval"
        assert value["decision"] == decision


def test_request_shows_message_escaped_policy_deadline_and_progress() -> None:
    blocks = request_blocks(REQUEST)
    shown = text_of(blocks)

    assert blocks[0]["type"] == "header"
    assert "production-deploy / approval" in blocks[0]["text"]["text"]
    assert "Apply 3 additions to &lt;production&gt; &amp; more?" in shown
    assert "2 approvals needed from jane@example.com, sam@example.com, team platform" in shown
    assert "<!date^1795348800^" in shown  # the deadline in each reader's own time zone
    assert "0 of 2 approvals" in shown


def test_policy_text_names_users_teams_and_any_member() -> None:
    assert policy_text({"approvers": {"users": ["a@x.io"]}, "min_approvals": 1}) == (
        "1 approval needed from a@x.io"
    )
    assert policy_text({"approvers": {"any_member": True}, "min_approvals": 3}) == (
        "3 approvals needed from any team member"
    )


def test_long_message_and_header_are_clipped_to_block_kit_limits() -> None:
    request = REQUEST | {"message": "x" * 5000, "workflow": "w" * 200}
    blocks = request_blocks(request)

    assert len(blocks[0]["text"]["text"]) <= 150
    assert all(len(b["text"]["text"]) <= 3000 for b in blocks if b["type"] == "section" and "text" in b)


def test_one_of_two_approvals_keeps_the_buttons_and_shows_who() -> None:
    approval = {"by": "jane@example.com", "at": "2026-11-21T12:05:00+00:00", "channel": "email"}
    view = REQUEST | {"approvals": [approval], "decisions": [{"decision": "approve", **approval}]}
    blocks = decided_blocks(view)
    shown = text_of(blocks)

    assert outcome(view) == "waiting"
    assert "Approved by jane@example.com via email" in shown
    assert "1 of 2 approvals" in shown
    assert {b["action_id"] for b in actions_of(blocks)} == {OPEN_ACTION, APPROVE_ACTION, REJECT_ACTION}


def test_approved_message_lists_both_approvers_and_drops_the_decision_buttons() -> None:
    jane = {"by": "jane@example.com", "at": "2026-11-21T12:05:00+00:00", "channel": "email"}
    sam = {
        "by": "sam@example.com",
        "at": "2026-11-21T12:06:00+00:00",
        "channel": "slack",
        "comment": "ship it",
    }
    view = REQUEST | {
        "status": "succeeded",
        "approvals": [jane, sam],
        "decisions": [{"decision": "approve", **jane}, {"decision": "approve", **sam}],
    }
    blocks = decided_blocks(view)
    shown = text_of(blocks)

    assert outcome(view) == "approved"
    assert "Approved by jane@example.com via email" in shown
    assert "Approved by sam@example.com via slack" in shown
    assert "_ship it_" in shown
    assert "2 of 2 approvals" in shown
    assert {b["action_id"] for b in actions_of(blocks)} == {OPEN_ACTION}
    assert fallback_text(view) == "Approval approved: production-deploy / approval"


def test_rejected_and_timed_out_steps_show_their_outcome_without_buttons() -> None:
    reject = {
        "decision": "reject",
        "by": "sam@example.com",
        "at": "2026-11-21T12:06:00+00:00",
        "channel": "slack",
    }
    rejected = REQUEST | {"status": "failed", "error": "ApprovalRejected", "decisions": [reject]}
    timed_out = REQUEST | {"status": "failed", "error": "ApprovalTimedOut"}

    assert outcome(rejected) == "rejected"
    assert "Rejected by sam@example.com" in text_of(decided_blocks(rejected))
    assert outcome(timed_out) == "timed_out"
    assert "Timed out" in text_of(decided_blocks(timed_out))
    for view in (rejected, timed_out):
        assert APPROVE_ACTION not in text_of(decided_blocks(view))


def test_approvers_slack_knows_are_mentioned_while_the_request_waits() -> None:
    directory = Directory(
        TeamsFile(
            teams={"platform": ["jane@example.com", "sam@example.com", "ops@example.com"]},
            people={
                "jane@example.com": Person(slack="U0JANE"),
                "sam@example.com": Person(slack="U0SAM"),
                "ops@example.com": Person(slack="<!channel>"),  # not a user id: never mentioned
            },
        )
    )
    slack = SlackApprovals(StubSecrets(None), directory=directory)  # type: ignore[arg-type]

    mentions = slack.mentions(REQUEST)
    approved = REQUEST | {"status": "succeeded"}

    assert mentions == ["U0JANE", "U0SAM"]
    assert "Approvers: <@U0JANE> <@U0SAM>" in text_of(request_blocks(REQUEST, mentions))
    assert "<@U0JANE>" not in text_of(decided_blocks(approved, mentions))


def test_the_approval_s_own_channel_wins_over_the_configured_one() -> None:
    slack = SlackApprovals(StubSecrets(None), settings=Settings(slack_channel="#ops"))  # type: ignore[arg-type]

    assert slack.channel_for(REQUEST) == "#ops"
    assert slack.channel_for(REQUEST | {"slack_channel": "#deploys"}) == "#deploys"


def test_posting_without_credentials_says_how_to_configure_slack() -> None:
    slack = SlackApprovals(StubSecrets(None), settings=Settings())  # type: ignore[arg-type]

    with pytest.raises(SlackNotConfigured, match="flowdeck secrets set-slack"):
        slack.post_request(REQUEST)


def test_escape_neutralises_mentions_and_links_in_user_text() -> None:
    assert escape("<!channel> <http://evil|click>") == "&lt;!channel&gt; &lt;http://evil|click&gt;"


@pytest.mark.parametrize(
    ("raw", "ok"),
    [
        ('{"bot_token": "xoxb-1", "signing_secret": "s"}', True),
        ('{"bot_token": "xoxb-1"}', False),
        ('{"bot_token": " ", "signing_secret": "s"}', False),
        ("not json", False),
        ("[1, 2]", False),
        ("", False),
    ],
)
def test_credentials_need_both_bot_token_and_signing_secret(raw: str, ok: bool) -> None:
    assert (parse_credentials(raw) is not None) == ok


# -- interactions ---------------------------------------------------------------------------
def payload(
    action_id: str = APPROVE_ACTION, decision: str = "approve", user: str = "U0SAM", **extra: Any
) -> bytes:
    """A block_actions body as Slack sends it: form-encoded `payload=<json>`."""
    value = json.dumps({"run_id": REQUEST["run_id"], "step": "approval", "decision": decision})
    data = {
        "type": "block_actions",
        "user": {"id": user, "username": "sam"},
        "container": {"type": "message", "channel_id": "C0APPROVE", "message_ts": "1700000000.000100"},
        "response_url": "https://hooks.slack.com/actions/T0/1/abc",
        "actions": [{"action_id": action_id, "block_id": "flowdeck_approval", "value": value}],
    } | extra
    return urlencode({"payload": json.dumps(data)}).encode()


def signature(body: bytes, timestamp: int = NOW, secret: str = SECRET) -> str:
    base = f"v0:{timestamp}:".encode() + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def test_parse_click_reads_decision_user_and_the_clicked_message() -> None:
    click = parse_click(payload())

    assert click is not None
    assert (click.run_id, click.step, click.decision, click.user_id) == (
        REQUEST["run_id"],
        "approval",
        "approve",
        "U0SAM",
    )
    assert click.message == {"channel": "C0APPROVE", "ts": "1700000000.000100"}


def test_link_button_and_other_interaction_types_are_not_clicks() -> None:
    open_run = payload(actions=[{"action_id": OPEN_ACTION, "value": ""}])
    shortcut = urlencode({"payload": json.dumps({"type": "shortcut", "callback_id": "x"})}).encode()

    assert parse_click(open_run) is None
    assert parse_click(shortcut) is None


@pytest.mark.parametrize(
    "body",
    [
        b"payload=%7Bnot-json",
        b"no-payload-field=1",
        b"\xff\xfe",
        urlencode({"payload": "[1]"}).encode(),
        payload(action_id=REJECT_ACTION, decision="approve"),  # a value that contradicts its button
        payload(actions=[{"action_id": APPROVE_ACTION, "value": "{}"}]),
        payload(user=""),
    ],
)
def test_malformed_payloads_are_bad_requests(body: bytes) -> None:
    with pytest.raises(BadRequest):
        parse_click(body)


class StubSecrets:
    name = "flowdeck/slack"

    def __init__(self, credentials: SlackCredentials | None) -> None:
        self.credentials = credentials

    def get(self) -> SlackCredentials | None:
        return self.credentials


class StubSlack:
    """SlackApprovals' surface the interactions use, recording updates."""

    def __init__(self, secret: str | None = SECRET, emails: dict[str, str] | None = None) -> None:
        self.secret = secret
        self.emails = emails or {}
        self.updates: list[dict[str, Any]] = []

    def signing_secret(self) -> str | None:
        return self.secret

    def email_of(self, user_id: str) -> str | None:
        return self.emails.get(user_id)

    def update_decided(self, request: dict[str, Any]) -> None:
        self.updates.append(request)


class FixedClock:
    def __init__(self, now: float) -> None:
        self.value = now

    def now(self) -> float:
        return self.value


class RecordingDecide:
    def __init__(self, error: Exception | None = None, view: dict[str, Any] | None = None) -> None:
        self.error = error
        self.view = view if view is not None else {"status": "waiting", "slack": {"channel": "C0APPROVE"}}
        self.calls: list[tuple[Any, ...]] = []

    def __call__(self, *args: Any) -> dict[str, Any]:
        self.calls.append(args)
        if self.error:
            raise self.error
        return self.view


DIRECTORY = Directory(TeamsFile(people={"sam@example.com": Person(slack="U0SAM")}))


def interactions(
    decide: RecordingDecide,
    slack: StubSlack | None = None,
    now: float = NOW,
    replies: list[tuple[str, str]] | None = None,
) -> SlackInteractions:
    def respond(url: str, text: str) -> None:
        if replies is None:
            raise AssertionError(f"unexpected reply to {url}: {text}")
        replies.append((url, text))

    return SlackInteractions(
        slack or StubSlack(),  # type: ignore[arg-type]
        decide,
        lambda: DIRECTORY,
        clock=FixedClock(now),
        respond=respond,
    )


def test_a_signed_click_decides_as_the_directory_email_through_slack() -> None:
    decide = RecordingDecide()
    body = payload()

    answer = interactions(decide).handle(body, str(NOW), signature(body))

    assert answer.status == 200
    assert decide.calls == [(REQUEST["run_id"], "approval", "sam@example.com", "approve", "slack", None)]


def test_unknown_slack_user_falls_back_to_the_profile_email() -> None:
    decide = RecordingDecide()
    body = payload(user="U0NEW")
    slack = StubSlack(emails={"U0NEW": "New@Example.com"})

    interactions(decide, slack).handle(body, str(NOW), signature(body))

    assert decide.calls[0][2] == "new@example.com"


def test_slack_user_without_any_email_is_not_allowed_told_why_and_nothing_is_decided() -> None:
    decide = RecordingDecide()
    body = payload(user="U0GHOST")
    replies: list[tuple[str, str]] = []

    with pytest.raises(NotAllowed):
        interactions(decide, replies=replies).handle(body, str(NOW), signature(body))
    assert decide.calls == []
    assert replies == [
        (
            "https://hooks.slack.com/actions/T0/1/abc",
            ":warning: Slack user U0GHOST has no e-mail Flowdeck knows: add them to teams.yaml `people`",
        )
    ]


@pytest.mark.parametrize(
    ("timestamp", "make_signature"),
    [
        (str(NOW), lambda body: signature(body, secret="wrong-secret")),  # forged
        (str(NOW - 301), lambda body: signature(body, NOW - 301)),  # replayed: genuine but stale
        (str(NOW + 301), lambda body: signature(body, NOW + 301)),  # from the future
        (str(NOW), lambda body: signature(body + b"&x=1")),  # body changed after signing
        ("not-a-number", lambda body: signature(body)),
        (None, lambda body: signature(body)),
        (str(NOW), lambda body: None),
    ],
)
def test_forged_stale_or_unsigned_requests_are_refused_before_anything_is_decided(
    timestamp: str | None, make_signature: Any
) -> None:
    decide = RecordingDecide()
    body = payload()

    with pytest.raises(Unauthorized):
        interactions(decide).handle(body, timestamp, make_signature(body))
    assert decide.calls == []


def test_without_a_signing_secret_every_interaction_is_refused() -> None:
    decide = RecordingDecide()
    body = payload()

    with pytest.raises(Unauthorized):
        interactions(decide, StubSlack(secret=None)).handle(body, str(NOW), signature(body))
    assert decide.calls == []


def test_a_signed_link_button_click_is_a_no_op() -> None:
    decide = RecordingDecide()
    body = payload(actions=[{"action_id": OPEN_ACTION}])

    answer = interactions(decide).handle(body, str(NOW), signature(body))

    assert (answer.status, answer.body["ignored"]) == (200, True)
    assert decide.calls == []


def test_decision_errors_pass_through_for_the_api_to_answer_and_the_clicker_is_told() -> None:
    body = payload()
    replies: list[tuple[str, str]] = []
    for error in (NotAllowed("you may not"), Conflict("already approved")):
        with pytest.raises(type(error)):
            interactions(RecordingDecide(error=error), replies=replies).handle(
                body, str(NOW), signature(body)
            )
    assert [text for _, text in replies] == [":warning: you may not", ":warning: already approved"]


def test_message_is_updated_here_only_when_the_step_does_not_record_it() -> None:
    body = payload()
    recorded, unrecorded = StubSlack(), StubSlack()

    interactions(
        RecordingDecide(view={"status": "waiting", "slack": {"channel": "C1", "ts": "1"}}), recorded
    ).handle(body, str(NOW), signature(body))
    interactions(RecordingDecide(view={"status": "waiting"}), unrecorded).handle(
        body, str(NOW), signature(body)
    )

    assert recorded.updates == []  # decide's on_decided hook updates a recorded message
    assert [u["slack"] for u in unrecorded.updates] == [{"channel": "C0APPROVE", "ts": "1700000000.000100"}]


# -- the definition -------------------------------------------------------------------------
APPROVAL_STEP = """\
name: wf
steps:
  - id: approval
    approval:
      approvers: {{users: [jane@example.com]}}
      channels: [slack]
      slack_channel: "{channel}"
"""


@pytest.mark.parametrize("channel", ["#deploys", "#team.ops-2", "C0123ABCD"])
def test_an_approval_may_name_its_slack_channel(channel: str) -> None:
    definition = parse_workflow(APPROVAL_STEP.format(channel=channel), "wf.yaml")

    step = definition.steps[0]
    assert step.approval is not None and step.approval.slack_channel == channel


@pytest.mark.parametrize("channel", ["deploys", "#Deploys", "#", "<!channel>"])
def test_a_slack_channel_that_is_neither_a_name_nor_an_id_is_refused_with_its_line(channel: str) -> None:
    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(APPROVAL_STEP.format(channel=channel), "wf.yaml")

    assert caught.value.problems == [
        f"wf.yaml:7: steps[0].approval.slack_channel: {channel!r} is not a Slack channel: "
        "use a name like #approvals or an id like C0123ABCD"
    ]
