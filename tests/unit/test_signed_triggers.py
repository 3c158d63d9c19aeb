"""Signed triggers' pure parts: HMAC signatures, the webhook inputs mapping, pushes and definition checks."""

from __future__ import annotations

import hashlib
import hmac
import textwrap

import pytest

from flowdeck.definition import parse_workflow
from flowdeck.definition.models import GitTrigger
from flowdeck.errors import InvalidDefinition
from flowdeck.triggers import github, signatures
from flowdeck.triggers.mapping import map_inputs, parse_path, path_problem

BODY = b'{"env": "production"}'
SECRET = "deploy-secret"
GOOD = "sha256=" + hmac.new(SECRET.encode(), BODY, hashlib.sha256).hexdigest()


# -- signatures ---------------------------------------------------------------------------------
def test_sign_is_hmac_sha256_of_the_body_as_hex_with_prefix() -> None:
    assert signatures.sign(SECRET, BODY) == GOOD
    assert signatures.verify(SECRET, BODY, GOOD)


def test_github_documented_example_verifies() -> None:
    # The example from GitHub's "Validating webhook deliveries" page.
    header = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"

    assert signatures.verify("It's a Secret to Everybody", b"Hello, World!", header)


def test_uppercase_hex_and_surrounding_space_are_accepted() -> None:
    assert signatures.verify(SECRET, BODY, " sha256=" + GOOD[7:].upper() + " ")


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        GOOD[7:],  # no prefix
        "sha1=" + GOOD[7:],
        "SHA256=" + GOOD[7:],
        GOOD[:-1],  # one hex digit short
        GOOD + "0",  # one too many
        GOOD[:-2] + "zz",  # not hex
        GOOD[:-1] + "é",  # not ASCII, same length
        signatures.sign("other-secret", BODY),
        signatures.sign(SECRET, BODY + b" "),
    ],
    ids=[
        "none",
        "empty",
        "no-prefix",
        "sha1",
        "prefix-case",
        "short",
        "long",
        "not-hex",
        "non-ascii",
        "other-secret",
        "other-body",
    ],
)
def test_anything_but_the_exact_signature_is_refused(header: str | None) -> None:
    assert not signatures.verify(SECRET, BODY, header)


def test_an_empty_secret_verifies_nothing() -> None:
    assert not signatures.verify("", BODY, signatures.sign("", BODY))


def test_comparison_is_constant_time(monkeypatch: pytest.MonkeyPatch) -> None:
    compared: list[tuple[str, str]] = []

    def spy(a: str, b: str) -> bool:
        compared.append((a, b))
        return a == b

    monkeypatch.setattr(signatures.hmac, "compare_digest", spy)

    assert signatures.verify(SECRET, BODY, GOOD)
    assert not signatures.verify(SECRET, BODY, "sha256=" + "0" * 64)
    assert compared == [(GOOD[7:], GOOD[7:]), (GOOD[7:], "0" * 64)]


# -- the inputs mapping -------------------------------------------------------------------------
def test_paths_select_keys_items_and_quoted_keys() -> None:
    body = {"a": {"b": [{"c": 1}, {"c": 2}]}, "x.y": "dotted", "list": [True]}

    assert parse_path('$.a.b[1]["c"]') == ["a", "b", 1, "c"]
    assert map_inputs({"one": "$.a.b[1].c", "dotted": '$["x.y"]', "flag": "$.list[0]", "all": "$"}, body) == {
        "one": 2,
        "dotted": "dotted",
        "flag": True,
        "all": body,
    }


def test_paths_that_find_nothing_leave_the_input_out() -> None:
    body = {"a": {"b": [1]}, "s": "text"}

    assert (
        map_inputs({"gone": "$.nope", "past": "$.a.b[5]", "into_text": "$.s.x", "index_map": "$.a[0]"}, body)
        == {}
    )
    assert map_inputs({"v": "$.a"}, [1, 2]) == {}


@pytest.mark.parametrize(
    ("path", "why"),
    [
        ("a.b", "start it with $"),
        ("$.a..b", "cannot read the path at '..b'"),
        ("$.a[x]", "cannot read the path at '[x]'"),
        ("$ .a", "cannot read the path"),
    ],
)
def test_bad_paths_are_explained(path: str, why: str) -> None:
    assert why in (path_problem(path) or "")


# -- pushes -------------------------------------------------------------------------------------
def test_push_fields_and_branch() -> None:
    push = github.parse_push(
        {
            "ref": "refs/heads/main",
            "after": "abc",
            "repository": {"full_name": "acme/infra"},
            "pusher": {"name": "ann"},
        }
    )

    assert (push.repo, push.branch, push.commit, push.pusher, push.deleted) == (
        "acme/infra",
        "main",
        "abc",
        "ann",
        False,
    )
    assert github.parse_push(push_payload(ref="refs/tags/v1")).branch is None


@pytest.mark.parametrize(
    "payload", [[], {"ref": "refs/heads/main"}, {"after": "a", "repository": {"full_name": "a/b"}}]
)
def test_payload_that_is_not_a_push_is_refused(payload: object) -> None:
    with pytest.raises(ValueError, match="push event"):
        github.parse_push(payload)


def test_branch_patterns() -> None:
    trigger = GitTrigger(repo="acme/infra", branches=["main", "release/*"])

    assert [
        github.branch_matches(trigger, b) for b in ("main", "release/1.2", "mainline", "feature/main")
    ] == [
        True,
        True,
        False,
        False,
    ]


def push_payload(**fields: object) -> dict[str, object]:
    return {"ref": "refs/heads/main", "after": "abc", "repository": {"full_name": "acme/infra"}} | fields


# -- definition checks --------------------------------------------------------------------------
def problems_of(text: str) -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(textwrap.dedent(text).lstrip("\n"), "wf.yaml")
    return caught.value.problems


def test_a_workflow_named_github_is_refused() -> None:
    problems = problems_of("""
        name: github
        steps: [{id: a, run: echo}]
    """)

    assert any("'github' is reserved" in p for p in problems), problems


def test_webhook_mapping_names_declared_inputs_with_valid_paths() -> None:
    problems = problems_of("""
        name: hooked
        inputs: {env: {type: string}}
        triggers:
          - webhook: {secret: s, inputs: {env: env, stray: $.x}}
        steps: [{id: a, run: echo}]
    """)

    assert any("triggers[0].webhook.inputs.env" in p and "start it with $" in p for p in problems), problems
    assert any("triggers[0].webhook.inputs.stray" in p and "unknown input 'stray'" in p for p in problems), (
        problems
    )
