"""Replay-proof webhooks through the API handler on moto: a timestamp signed with the body, accepted once.

`stamped` requires the timestamped form (`require_timestamp: true`); `hooked` takes either form.
"""

from __future__ import annotations

import json
import time
from typing import Any

from flowdeck.triggers.signatures import sign, sign_timestamped
from tests.integration import test_hooks
from tests.integration.test_api import assert_error
from tests.integration.test_hooks import DEPLOY_SECRET, Hooks

# The signed-triggers fixture (moto, the triggers fixtures, the deploy-hook secret), shared.
hooks = test_hooks.hooks

BODY = json.dumps({"version": "1.2.3"})
HOOKED_BODY = json.dumps({"env": "staging", "release": {"tag": "v7"}})


def stamped(
    hooks: Hooks,
    body: str = BODY,
    at: int | None = None,
    delivery: str | None = "d-1",
    secret: str = DEPLOY_SECRET,
    workflow: str = "stamped",
    **headers: str,
) -> tuple[int, Any]:
    """POST a delivery signed with a timestamp (now unless `at`) and the body."""
    timestamp = str(int(time.time()) if at is None else at)
    headers.setdefault("X-Flowdeck-Timestamp", timestamp)
    headers.setdefault("X-Flowdeck-Signature", sign_timestamped(secret, timestamp, body.encode()))
    if delivery is not None:
        headers["X-Flowdeck-Delivery"] = delivery
    return hooks.call("POST", f"/hooks/{workflow}", body=body, headers=headers)


def test_fresh_timestamped_delivery_starts_a_run(hooks: Hooks) -> None:
    status, body = stamped(hooks)

    assert (status, body["duplicate"]) == (202, False), body
    [started] = hooks.executions("stamped")
    assert (started["trigger"], started["started_by"]) == ("webhook", "webhook:deploy-hook")
    assert started["inputs"]["version"] == "1.2.3"


def test_stale_timestamp_is_401_starts_nothing_and_is_recorded_refused(hooks: Hooks) -> None:
    message = assert_error(stamped(hooks, at=int(time.time()) - 301), 401, "Unauthorized")

    assert message.startswith("stale delivery: X-Flowdeck-Timestamp is 30")
    assert hooks.executions("stamped") == []
    [row] = hooks.deliveries("stamped")
    assert (row["outcome"], row["status_code"], row["delivery_id"]) == ("refused", 401, "d-1")


def test_timestamp_too_far_ahead_is_refused_too(hooks: Hooks) -> None:
    assert_error(stamped(hooks, at=int(time.time()) + 600), 401, "Unauthorized")

    assert hooks.executions("stamped") == []


def test_missing_timestamp_where_required_is_401(hooks: Hooks) -> None:
    body_only = hooks.call(
        "POST",
        "/hooks/stamped",
        body=BODY,
        headers={"X-Flowdeck-Signature": sign(DEPLOY_SECRET, BODY.encode())},
    )
    no_header = hooks.call(
        "POST",
        "/hooks/stamped",
        body=BODY,
        headers={"X-Flowdeck-Signature": sign_timestamped(DEPLOY_SECRET, int(time.time()), BODY.encode())},
    )

    assert assert_error(body_only, 401, "Unauthorized").startswith(
        "this webhook accepts only timestamped signatures"
    )
    assert assert_error(no_header, 401, "Unauthorized").startswith("missing X-Flowdeck-Timestamp header")
    assert hooks.executions("stamped") == []
    assert [row["outcome"] for row in hooks.deliveries("stamped")] == ["refused", "refused"]


def test_a_timestamp_that_is_not_unix_seconds_is_401(hooks: Hooks) -> None:
    answer = stamped(hooks, **{"X-Flowdeck-Timestamp": "2026-12-06T07:00:00Z"})

    assert (
        assert_error(answer, 401, "Unauthorized") == "X-Flowdeck-Timestamp must be the Unix time in seconds"
    )


def test_replayed_body_with_a_new_delivery_id_is_refused(hooks: Hooks) -> None:
    timestamp = int(time.time())
    assert stamped(hooks, at=timestamp, delivery="d-1")[0] == 202

    replayed = stamped(hooks, at=timestamp, delivery="d-2")
    without_id = stamped(hooks, at=timestamp, delivery=None)

    assert assert_error(replayed, 401, "Unauthorized").startswith("replayed delivery")
    assert_error(without_id, 401, "Unauthorized")
    assert len(hooks.executions("stamped")) == 1
    outcomes = [(row["delivery_id"], row["outcome"]) for row in hooks.deliveries("stamped")]
    assert outcomes[0][1] == "refused" and ("d-2", "refused") in outcomes and ("d-1", "started") in outcomes


def test_a_senders_retry_of_the_same_delivery_answers_the_same_run(hooks: Hooks) -> None:
    timestamp = int(time.time())
    first = stamped(hooks, at=timestamp, delivery="d-1")
    again = stamped(hooks, at=timestamp, delivery="d-1")
    resigned = stamped(hooks, at=timestamp + 1, delivery="d-1")

    assert first[0] == again[0] == resigned[0] == 202
    assert first[1]["run_id"] == again[1]["run_id"] == resigned[1]["run_id"]
    assert (again[1]["duplicate"], resigned[1]["duplicate"]) == (True, True)
    assert len(hooks.executions("stamped")) == 1


def test_forged_timestamped_signature_is_refused(hooks: Hooks) -> None:
    timestamp = int(time.time())
    wrong_secret = stamped(hooks, at=timestamp, secret="not-the-secret")
    moved_timestamp = stamped(
        hooks,
        delivery="d-2",
        **{
            "X-Flowdeck-Timestamp": str(timestamp + 1),
            "X-Flowdeck-Signature": sign_timestamped(DEPLOY_SECRET, timestamp, BODY.encode()),
        },
    )
    changed_body = stamped(
        hooks,
        body=json.dumps({"version": "6.6.6"}),
        delivery="d-3",
        **{"X-Flowdeck-Signature": sign_timestamped(DEPLOY_SECRET, timestamp, BODY.encode())},
        **{"X-Flowdeck-Timestamp": str(timestamp)},
    )

    for answer in (wrong_secret, moved_timestamp, changed_body):
        assert assert_error(answer, 401, "Unauthorized").startswith("bad signature: X-Flowdeck-Signature")
    assert hooks.executions("stamped") == []


def test_body_only_signature_keeps_working_where_not_required(hooks: Hooks) -> None:
    first = hooks.webhook("hooked", json.loads(HOOKED_BODY), **{"X-Flowdeck-Delivery": "b-1"})
    other_id = hooks.webhook("hooked", json.loads(HOOKED_BODY), **{"X-Flowdeck-Delivery": "b-2"})

    assert (first[0], other_id[0]) == (202, 202)
    # Body-only signatures cannot tell a replay from a new delivery: hence require_timestamp.
    assert len(hooks.executions("hooked")) == 2


def test_timestamped_form_where_not_required_is_still_accepted_once(hooks: Hooks) -> None:
    timestamp = int(time.time())
    first = stamped(hooks, body=HOOKED_BODY, at=timestamp, workflow="hooked", delivery="t-1")
    replayed = stamped(hooks, body=HOOKED_BODY, at=timestamp, workflow="hooked", delivery="t-2")

    assert first[0] == 202, first
    assert_error(replayed, 401, "Unauthorized")
    assert len(hooks.executions("hooked")) == 1


def test_start_permission_binds_people_not_the_webhook(hooks: Hooks) -> None:
    by_hand = hooks.call(
        "POST", "/workflows/stamped/runs", body="{}", headers={"X-Flowdeck-User": "jane@example.com"}
    )

    assert_error(by_hand, 403, "NotAllowed")
    assert stamped(hooks)[0] == 202
