"""Timestamped webhook signatures (`v0=` over `v0:<timestamp>:<body>`): Slack's scheme and window."""

from __future__ import annotations

import pytest
from slack_sdk.signature import SignatureVerifier

from flowdeck.triggers.signatures import (
    WINDOW_SECONDS,
    is_timestamped,
    sign,
    sign_timestamped,
    timestamp_seconds,
    verify_timestamped,
)

SECRET = "s3cr3t"
BODY = b'{"version": "1.2.3"}'
NOW = 1_800_000_000


def test_signature_is_slacks_so_slack_signing_code_works_unchanged():
    expected = SignatureVerifier(SECRET).generate_signature(timestamp=str(NOW), body=BODY)

    assert sign_timestamped(SECRET, NOW, BODY) == expected


@pytest.mark.parametrize("offset", [0, -WINDOW_SECONDS, WINDOW_SECONDS])
def test_a_timestamp_within_the_window_verifies(offset):
    header = sign_timestamped(SECRET, NOW + offset, BODY)

    assert verify_timestamped(SECRET, BODY, str(NOW + offset), header, now=lambda: NOW)


@pytest.mark.parametrize("offset", [-WINDOW_SECONDS - 1, WINDOW_SECONDS + 1])
def test_a_timestamp_outside_the_window_does_not(offset):
    header = sign_timestamped(SECRET, NOW + offset, BODY)

    assert not verify_timestamped(SECRET, BODY, str(NOW + offset), header, now=lambda: NOW)


@pytest.mark.parametrize(
    ("body", "timestamp", "header"),
    [
        (b'{"version": "6.6.6"}', str(NOW), sign_timestamped(SECRET, NOW, BODY)),  # body changed
        (BODY, str(NOW + 1), sign_timestamped(SECRET, NOW, BODY)),  # timestamp changed
        (BODY, str(NOW), sign_timestamped("other", NOW, BODY)),  # another secret
        (BODY, str(NOW), sign(SECRET, BODY)),  # the body-only form
        (BODY, str(NOW), "v0=" + "é" * 64),  # not ASCII: refused, not a TypeError
        (b"\xff\xfe", str(NOW), sign_timestamped(SECRET, NOW, b"\xff\xfe")),  # not UTF-8
        (BODY, "1e9", sign_timestamped(SECRET, "1e9", BODY)),  # not plain seconds
    ],
)
def test_anything_else_does_not_verify(body, timestamp, header):
    assert not verify_timestamped(SECRET, body, timestamp, header, now=lambda: NOW)


def test_upper_case_hex_verifies_like_the_body_only_form():
    header = sign_timestamped(SECRET, NOW, BODY).upper().replace("V0=", "v0=")

    assert verify_timestamped(SECRET, BODY, str(NOW), header, now=lambda: NOW)


def test_which_form_a_header_uses():
    assert is_timestamped(" v0=abc")
    assert not is_timestamped(sign(SECRET, BODY))
    assert not is_timestamped(None)


@pytest.mark.parametrize(("value", "seconds"), [("1800000000", NOW), (" 12 ", 12), ("", None), ("-1", None)])
def test_timestamp_is_plain_unix_seconds(value, seconds):
    assert timestamp_seconds(value) == seconds
