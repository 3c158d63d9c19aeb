"""How long a step message waited in the queue: the part of its heartbeat interval already gone."""

from __future__ import annotations

import time

from flowdeck.runner.worker import waited_in_queue


def test_the_wait_is_counted_from_sqs_sent_timestamp() -> None:
    sent = str(int((time.time() - 4) * 1000))

    waited = waited_in_queue({"Attributes": {"SentTimestamp": sent}})

    assert waited is not None and 3.9 < waited < 5


def test_a_sender_clock_ahead_of_ours_counts_as_no_wait() -> None:
    assert waited_in_queue({"Attributes": {"SentTimestamp": str(int((time.time() + 60) * 1000))}}) == 0.0


def test_without_the_attribute_the_wait_is_unknown() -> None:
    assert waited_in_queue({}) is None
    assert waited_in_queue({"Attributes": {"SentTimestamp": "soon"}}) is None
