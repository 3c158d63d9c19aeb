"""Approvals without AWS: signed links, policies, the teams directory and the compiled approval state."""

from __future__ import annotations

import base64
import json

import pytest

from flowdeck.approvals.directory import Directory, DirectoryError, TeamsFile
from flowdeck.approvals.links import LinkClaims, LinkExpired, sign, verify
from flowdeck.approvals.policy import approvers_of, describe, may_decide
from flowdeck.definition import parse_workflow
from flowdeck.errors import Unauthorized
from statemachines.compiler import compile_workflow

KEY = b"k" * 32
CLAIMS = LinkClaims("run-1", "approval", "jane@example.com", "approve", 2_000_000_000)


def test_a_signed_link_verifies_to_its_claims() -> None:
    assert verify(sign(CLAIMS, KEY), KEY, now=1_900_000_000) == CLAIMS


def test_a_link_past_its_deadline_is_expired() -> None:
    with pytest.raises(LinkExpired):
        verify(sign(CLAIMS, KEY), KEY, now=2_000_000_000)


@pytest.mark.parametrize(
    "field,value", [("decision", "reject"), ("approver", "mallory@example.com"), ("exp", 3_000_000_000)]
)
def test_a_link_whose_payload_was_changed_is_refused(field: str, value: object) -> None:
    payload, signature = sign(CLAIMS, KEY).split(".")
    data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    data[field] = value
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()
    with pytest.raises(Unauthorized):
        verify(f"{forged}.{signature}", KEY, now=0)


@pytest.mark.parametrize("token", ["", "nodot", "a.b.c", "!!!.???", "x" * 5000])
def test_malformed_links_are_refused(token: str) -> None:
    with pytest.raises(Unauthorized):
        verify(token, KEY, now=0)


def test_a_link_signed_with_another_key_is_refused() -> None:
    with pytest.raises(Unauthorized):
        verify(sign(CLAIMS, b"other"), KEY, now=0)


DIRECTORY = Directory(
    TeamsFile.model_validate(
        {
            "teams": {"platform": ["Jane@example.com", "sam@example.com"], "sre": ["ops@example.com"]},
            "people": {"jane@example.com": {"slack": "U0JANE"}},
        }
    )
)


def test_policies_name_users_group_members_or_everyone() -> None:
    assert approvers_of({"users": ["A@x.com"]}, DIRECTORY) == {"a@x.com"}
    assert approvers_of({"groups": ["platform"]}, DIRECTORY) == {"jane@example.com", "sam@example.com"}
    assert approvers_of({"any_member": True}, DIRECTORY) == {
        "jane@example.com",
        "sam@example.com",
        "ops@example.com",
    }
    assert may_decide("SAM@example.com", {"groups": ["platform"]}, DIRECTORY)
    assert not may_decide("ops@example.com", {"groups": ["platform"]}, DIRECTORY)
    assert not may_decide("x@example.com", {"groups": ["unknown"]}, DIRECTORY)
    assert describe({"users": ["a@x.com"], "groups": ["platform"]}) == "a@x.com, group platform"


def test_the_directory_maps_slack_ids_both_ways() -> None:
    assert DIRECTORY.email_for_slack("U0JANE") == "jane@example.com"
    assert DIRECTORY.slack_for_email("JANE@example.com") == "U0JANE"
    assert DIRECTORY.email_for_slack("U0NOBODY") is None


def test_a_broken_teams_file_is_a_clear_error(tmp_path) -> None:
    (tmp_path / "teams.yaml").write_text("teams: [not, a, map]\n")
    with pytest.raises(DirectoryError, match=r"teams\.yaml"):
        Directory.load(tmp_path)
    assert not Directory.load(tmp_path / "absent").exists


WORKFLOW = """
name: gated
steps:
  - id: plan
    run: echo plan
  - id: approval
    needs: [plan]
    approval:
      approvers: {users: [jane@example.com]}
      timeout: 2h
      message: "Go {{ inputs.x }}?"
  - id: apply
    needs: [approval]
    run: echo apply
"""


def test_an_approval_compiles_to_one_wait_for_token_task_on_the_approvals_queue() -> None:
    states = compile_workflow(parse_workflow(WORKFLOW))["States"]
    task = states["approval"]

    assert task["Resource"] == "arn:aws:states:::sqs:sendMessage.waitForTaskToken"
    assert task["Parameters"]["QueueUrl"] == "${ApprovalsQueueUrl}"
    body = task["Parameters"]["MessageBody"]
    assert body["type"] == "approval" and body["step"] == "approval" and body["timeout_seconds"] == 7200
    assert body["approval"]["approvers"]["users"] == ["jane@example.com"]
    assert (task["TimeoutSeconds"], task["ResultPath"], task["Next"]) == (7200, None, "apply")
    assert "HeartbeatSeconds" not in task
    assert task["Catch"] == [
        {"ErrorEquals": ["States.Timeout"], "ResultPath": "$.error", "Next": "approval:ApprovalTimedOut"},
        {"ErrorEquals": ["States.ALL"], "ResultPath": "$.error", "Next": "RecordRunFailed"},
    ]
    recorder = states["approval:ApprovalTimedOut"]["Parameters"]
    assert recorder["ExpressionAttributeValues"][":error"] == {"S": "ApprovalTimedOut"}
    assert "REMOVE #wait_token" in recorder["UpdateExpression"]
    assert states["approval:ApprovalTimedOut?"]["Next"] == "RecordRunFailed"
    assert states["RecordRunFailed"]["Parameters"]["ConditionExpression"] == (
        "#status IN (:running, :waiting) AND attribute_not_exists(#cancel)"
    )
    # The other steps keep their usual transitions.
    assert states["plan"]["Next"] == "approval" and states["apply"]["Next"] == "RecordRunSucceeded"


def test_an_approval_inside_parallel_branches_fails_its_branch() -> None:
    definition = parse_workflow(
        "name: p\nsteps:\n  - id: a\n    run: echo\n  - id: gate\n    needs: []\n"
        "    approval:\n      approvers: {any_member: true}\n"
    )
    states = compile_workflow(definition)["States"]
    parallel = next(s for s in states.values() if s.get("Type") == "Parallel")
    branch = next(b["States"] for b in parallel["Branches"] if "gate" in b["States"])
    assert branch["gate"]["Catch"][1]["Next"] == "gate:Failed!"
    assert branch["gate:ApprovalTimedOut!"]["Type"] == "Fail"


def _step(
    status: str, approvals: list[str], decisions: list[dict[str, str]] | None = None
) -> dict[str, object]:
    return {
        "id": "approval",
        "status": status,
        "decisions": decisions or [],
        "approval": {
            "approvals": [{"by": a} for a in approvals],
            "approved": len(approvals),
            "min_approvals": 2,
            "who_may_decide": "jane@example.com, sam@example.com",
            "deadline": "2026-11-22T10:00:00+00:00",
        },
    }


def test_show_says_who_approved_who_may_still_decide_or_who_rejected_and_why() -> None:
    from flowdeck.cli.render import approval_detail

    done = approval_detail(_step("succeeded", ["jane@example.com", "sam@example.com"]))
    waiting = approval_detail(_step("waiting", ["jane@example.com"]))
    reject = {"decision": "reject", "by": "sam@example.com", "channel": "email", "comment": "not today"}
    rejected = approval_detail(_step("failed", [], [reject]))

    assert done == "Approved by jane@example.com, sam@example.com"
    assert waiting.startswith("Waiting for 1 of 2 approvals from jane@example.com, sam@example.com")
    assert "(approved by jane@example.com)" in waiting and "deadline" in waiting
    assert rejected == "Rejected by sam@example.com via email: not today"
