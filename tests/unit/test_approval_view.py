"""What the run view shows of an approval step: its request and which channels delivered it."""

from __future__ import annotations

from flowdeck.approvals.decisions import approval_view


def test_the_view_says_which_channels_delivered_the_request_and_which_failed():
    item = {
        "status": "waiting",
        "approval": {
            "message": "Ship it?",
            "approvers": {"users": ["jane@example.com"]},
            "channels": ["email", "slack", "inbox"],
            "delivered": {"email": True, "email_to": ["jane@example.com"], "slack": True},
            "delivery_errors": [{"channel": "slack", "at": "2026-12-06T04:00:00+00:00", "error": "down"}],
        },
    }
    view = approval_view("r-1", "approval", item)
    assert view["channels"] == ["email", "slack", "inbox"]
    assert view["delivered"] == {"email": True, "email_to": ["jane@example.com"], "slack": True}
    assert [e["channel"] for e in view["delivery_errors"]] == ["slack"]


def test_a_request_not_delivered_yet_shows_no_delivery():
    view = approval_view("r-1", "approval", {"status": "waiting", "approval": {"channels": ["email"]}})
    assert "delivered" not in view and "delivery_errors" not in view
