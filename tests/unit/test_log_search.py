"""Searching a stored batch: the lines picked out of its JSON text are the lines a whole parse finds."""

from __future__ import annotations

import base64
import json
import random
import zlib
from typing import Any

import pytest

from flowdeck.stores import logs
from flowdeck.stores.logs import decode_lines, encode_lines, matching_lines


def line(text: str, stream: str = "stdout", **extra: Any) -> dict[str, Any]:
    return {"t": 1763750000.123, "stream": stream, "text": text, **extra}


def stored(lines: list[dict[str, Any]]) -> dict[str, Any]:
    return {"B": encode_lines(lines)}


def by_whole_parse(lines: list[dict[str, Any]], needle: str) -> list[dict[str, Any]]:
    return [x for x in lines if needle in x["text"].casefold()]


TRICKY = [
    line('say "hi" to C:\\temp\\'),
    line("ends with a backslash \\"),
    line('ends with a quote "'),
    line('{"t": 1} looks like a line, and ,{ too'),
    line("\x1b[31mred\x1b[0m\ttab\rcarriage"),
    line("stdout stream t text", stream="stderr"),
    line("continued part", cont=True),
    line("THE Quick BROWN fox"),
    line(""),
]


@pytest.mark.parametrize(
    "needle",
    [
        "hi",
        '"hi"',
        "\\",
        '\\"',
        '"',
        "{",
        '{"t":',
        ",{",
        "stdout",
        "stream",
        "t",
        "1763750000",
        "cont",
        "true",
        "\x1b[31m",
        "\t",
        "quick brown",
        "nowhere",
        "é",
    ],
)
def test_the_lines_picked_for_a_needle_are_those_a_whole_parse_finds(needle: str) -> None:
    needle = needle.casefold()
    assert matching_lines(stored(TRICKY), needle) == by_whole_parse(TRICKY, needle)
    # ASCII text in the writer's key order: the lines were picked, not found by parsing it all (but
    # "t", in every line's JSON 4 times, occurs more often than picking one by one pays)
    picked = logs._pick_matches(json.dumps(TRICKY, separators=(",", ":")), needle)
    assert (picked is None) == (needle == "t")


def test_non_ascii_text_is_matched_by_its_case_folding() -> None:
    batch = [line("Straße"), line("KELVIN \u212a"), line("plain strasse"), line("kelvin k")]
    assert matching_lines(stored(batch), "strasse") == [batch[0], batch[2]]
    assert matching_lines(stored(batch), "kelvin k") == [batch[1], batch[3]]


def test_many_matches_in_a_batch_and_another_key_order_still_give_every_line() -> None:
    many = [line(f"match {i}") for i in range(logs.MAX_PICKED_LINES * 3)]
    assert matching_lines(stored(many), "match") == many
    reordered = [{"stream": "stdout", "text": "first match", "t": 1.0}, line("second match")]
    assert matching_lines(stored(reordered), "match") == reordered
    assert matching_lines(stored([reordered[1], reordered[0]]), "first") == [reordered[0]]


def test_random_batches_and_needles_agree_with_a_whole_parse() -> None:
    rng = random.Random(13)  # noqa: S311 - seeded on purpose: the same cases every run
    picked = 0
    alphabet = 'ab AB"\\{},:t\x1b\té'
    for _ in range(400):
        batch = [
            line(
                "".join(rng.choices(alphabet, k=rng.randint(0, 12))), stream=rng.choice(["stdout", "stderr"])
            )
            for _ in range(rng.randint(0, 8))
        ]
        ascii_only = rng.random() < 0.7
        if ascii_only:
            batch = [x | {"text": x["text"].replace("é", "e")} for x in batch]
        needle = "".join(rng.choices(alphabet, k=rng.randint(1, 3))).casefold()
        assert matching_lines(stored(batch), needle) == by_whole_parse(batch, needle), (batch, needle)
        picked += (
            logs._pick_matches(json.dumps(batch, separators=(",", ":"), ensure_ascii=False), needle)
            is not None
        )
    assert picked > 200  # most cases took the picking path, not the whole parse


def typed(x: dict[str, Any]) -> dict[str, Any]:
    """A line as the first layout stored it: a map of typed values."""
    m = {"t": {"N": str(x["t"])}, "stream": {"S": x["stream"]}, "text": {"S": x["text"]}}
    return {"M": m | ({"cont": {"BOOL": True}} if x.get("cont") else {})}


def test_every_stored_layout_decodes_and_searches_alike() -> None:
    batch = [line("Old error"), line("new output", stream="stderr", cont=True)]
    binary = encode_lines(batch)
    assert json.loads(zlib.decompress(binary)) == batch
    layouts = [
        {"B": binary},
        {"B": base64.b64encode(binary).decode("ascii")},  # as a Lambda stream event carries it
        {"S": json.dumps(batch)},
        {"L": [typed(x) for x in batch]},
    ]
    for value in layouts:
        assert decode_lines(value) == batch
        assert matching_lines(value, "error") == [batch[0]]
