"""Approvals end to end on the local stack: e-mail links, the inbox and API, reject, timeout."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from flowdeck.cli.approvals import email_link
from flowdeck.cli.main import app
from flowdeck.control.owed_answers import AnswerSender
from flowdeck.local.stack import LocalStack
from tests.e2e.conftest import start, steps_by_id, wait

pytestmark = pytest.mark.e2e

ALICE, BOB = "alice@example.com", "bob@example.com"


def wait_for_approval(
    api: httpx.Client, run_id: str, step: str = "approval", timeout: float = 60.0
) -> dict[str, Any]:
    """Poll until the approval step waits with its request recorded; the run as read then."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = api.get(f"/runs/{run_id}").json()
        current = steps_by_id(run).get(step, {}) if run.get("steps") else {}
        if run.get("status") == "waiting" and current.get("status") == "waiting" and current.get("approval"):
            return dict(run)
        time.sleep(0.1)
    raise AssertionError(f"{step} of {run_id} never waited: {api.get(f'/runs/{run_id}').text}")


def as_user(api: httpx.Client, user: str) -> dict[str, str]:
    return {"X-Flowdeck-User": user}


def steps_queue_in_flight(stack: LocalStack) -> tuple[int, int]:
    """(visible, in flight) messages of the steps queue: a waiting approval holds neither."""
    attributes = stack.client("sqs").get_queue_attributes(
        QueueUrl=stack.steps_queue_url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]), int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


def test_two_approvals_one_by_email_link_one_by_api_then_the_run_succeeds(
    api: httpx.Client, stack: LocalStack
) -> None:
    run_id = start(api, "approval-deploy", environment="staging")
    waiting = wait_for_approval(api, run_id)

    assert waiting["status"] == "waiting"
    approval = steps_by_id(waiting)["approval"]["approval"]
    assert approval["message"] == "Apply 3 additions to staging?"
    assert approval["min_approvals"] == 2 and approval["approved"] == 0
    assert approval["link"] == f"{stack.api_url}/#/runs/{run_id}?step=approval"
    assert steps_by_id(waiting)["apply"]["status"] == "pending"
    visible, in_flight = steps_queue_in_flight(stack)
    print(f"while waiting: steps queue visible={visible} in_flight={in_flight}")
    assert (visible, in_flight) == (0, 0)

    # The inbox lists it for an approver, not for an outsider.
    mine = api.get("/inbox", headers=as_user(api, BOB)).json()
    assert [(a["run_id"], a["step"]) for a in mine["approvals"]] == [(run_id, "approval")]
    assert api.get("/inbox", headers=as_user(api, "mallory@example.com")).json()["approvals"] == []
    outsider = api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, "mallory@example.com"))
    assert outsider.status_code == 403 and outsider.json()["error"] == "NotAllowed"

    cli = CliRunner()
    listed = cli.invoke(app, ["--api", stack.api_url, "inbox", "--as", BOB], env={"COLUMNS": "200"})
    assert run_id in listed.output and f"flowdeck approve {run_id} approval" in listed.output
    printed = cli.invoke(
        app, ["--api", stack.api_url, "inbox", "--emails", "--as", ALICE], env={"COLUMNS": "200"}
    )
    assert "Apply 3 additions to staging?" in printed.output
    assert f"Approve: {stack.api_url}/approvals/" in printed.output

    # Alice by her e-mailed link: GET is a confirmation page only, POST decides, a second use is 409.
    link = email_link(stack.api_url, run_id, ALICE, "approve")
    assert link.startswith(f"{stack.api_url}/approvals/")
    page = httpx.get(link)
    assert page.status_code == 200 and "<form method='post'>" in page.text
    assert steps_by_id(api.get(f"/runs/{run_id}").json())["approval"]["approval"]["approved"] == 0
    decided = httpx.post(link, data={"comment": "plan looks right"})
    assert decided.status_code == 200 and "Decision recorded" in decided.text
    assert httpx.post(link, data={}).status_code == 409
    forged = re.sub(r"\.[^.]+$", ".AAAA", link)
    assert httpx.get(forged).status_code == 401

    # Bob twice through the API: counts once, then the run goes on.
    first = api.post(
        f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, BOB), json={"comment": "ok"}
    )
    assert first.status_code == 202 and first.json()["status"] == "succeeded"
    run = wait(api, run_id)

    assert run["status"] == "succeeded", run
    step = steps_by_id(run)["approval"]
    assert step["status"] == "succeeded"
    assert [(d["by"], d["channel"], d.get("comment")) for d in step["decisions"]] == [
        (ALICE, "email", "plan looks right"),
        (BOB, "api", "ok"),
    ]
    assert steps_by_id(run)["apply"]["status"] == "succeeded"
    late = api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, BOB))
    assert late.status_code == 409
    shown = CliRunner().invoke(app, ["--api", stack.api_url, "show", run_id], env={"COLUMNS": "200"})
    print(shown.output)
    assert f"Approved by {ALICE}, {BOB}" in shown.output


def test_a_reject_fails_the_run_with_who_and_the_comment(api: httpx.Client, stack: LocalStack) -> None:
    run_id = start(api, "approval-deploy")
    wait_for_approval(api, run_id)

    result = CliRunner().invoke(
        app,
        ["--api", stack.api_url, "reject", run_id, "approval", "--comment", "not on a Friday", "--as", BOB],
    )
    assert result.exit_code == 0, result.output
    run = wait(api, run_id)

    assert run["status"] == "failed"
    step = steps_by_id(run)["approval"]
    assert step["error"] == "ApprovalRejected"
    assert step["cause"] == f"rejected by {BOB}: not on a Friday"
    apply = steps_by_id(run)["apply"]
    assert (apply["status"], apply["not_run"]) == ("skipped", "the run failed at approval")
    assert api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, ALICE)).status_code == 409
    shown = CliRunner().invoke(app, ["--api", stack.api_url, "show", run_id], env={"COLUMNS": "200"})
    print(shown.output)
    assert "Rejected by bob@example.com via api: not on a Friday" in shown.output


def test_nobody_deciding_in_time_fails_the_step_with_approval_timed_out(
    api: httpx.Client, stack: LocalStack
) -> None:
    run_id = start(api, "approval-quick")

    run = wait(api, run_id, timeout=90)

    assert run["status"] == "failed"
    step = steps_by_id(run)["approval"]
    assert step["error"] == "ApprovalTimedOut"
    after = steps_by_id(run)["after"]
    assert (after["status"], after["not_run"]) == ("skipped", "the run failed at approval")
    late = api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, "jane@example.com"))
    assert late.status_code == 409


def test_cancelling_a_waiting_approval_ends_it_and_a_later_decision_is_409(
    api: httpx.Client, stack: LocalStack
) -> None:
    run_id = start(api, "approval-deploy")
    wait_for_approval(api, run_id)

    assert api.post(f"/runs/{run_id}/cancel", json={}).status_code in (200, 202)
    run = wait(api, run_id)

    assert run["status"] == "cancelled"
    assert steps_by_id(run)["approval"]["status"] == "cancelled"
    assert api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, ALICE)).status_code == 409
    assert api.get("/inbox", headers=as_user(api, ALICE)).json()["approvals"] == []


def test_an_approval_whose_answer_the_api_never_sent_still_moves_the_run(
    api: httpx.Client, monkeypatch: pytest.MonkeyPatch
) -> None:
    run_id = start(api, "approval-deploy")
    wait_for_approval(api, run_id)
    assert api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, ALICE)).status_code == 202

    def dies(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("the API process died between recording the decision and answering the token")

    # The API dies right after recording the last approval needed, before it answers the token.
    monkeypatch.setattr(AnswerSender, "answer", dies)
    lost = api.post(f"/runs/{run_id}/steps/approval/approve", headers=as_user(api, BOB))
    monkeypatch.undo()

    assert lost.status_code == 500
    # Nobody asks again: the run-events reaction sends the answer the recorded decision owes.
    run = wait(api, run_id, timeout=30)
    assert run["status"] == "succeeded"
    steps = steps_by_id(run)
    assert steps["approval"]["approval"]["approved_by"] == [ALICE, BOB]
    assert steps["apply"]["status"] == "succeeded"
