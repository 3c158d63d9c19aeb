"""The `permissions:` block: what the loader refuses (file, line, field) and what each rule allows."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowdeck.approvals.directory import Directory, TeamsFile
from flowdeck.catalog import Catalog
from flowdeck.control.permissions import Permissions, describe, may
from flowdeck.definition import load_workflows, parse_workflow
from flowdeck.definition.models import Who
from flowdeck.errors import InvalidDefinition, NotAllowed

TEAMS = Directory(TeamsFile(teams={"platform": ["jane@example.com"], "qa": ["quinn@example.com"]}))
GUARDED = """\
name: deploy
permissions:
  start: {groups: [platform]}
  cancel:
    users: [ops@example.com]
    groups: [platfrom]
steps:
  - id: one
    run: echo one
"""


def write(folder: Path, text: str, teams: str | None = "teams:\n  platform: [jane@example.com]\n") -> None:
    (folder / "deploy.yaml").write_text(textwrap.dedent(text))
    if teams is not None:
        (folder / "teams.yaml").write_text(teams)


def problems(folder: Path) -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        load_workflows(folder)
    return caught.value.problems


def test_unknown_team_is_a_definition_error_on_its_line(tmp_path):
    write(tmp_path, GUARDED)

    assert problems(tmp_path) == [
        f"{tmp_path / 'deploy.yaml'}:6: permissions.cancel.groups[0]: team 'platfrom' is not in teams.yaml"
    ]


def test_a_team_is_unknown_without_a_teams_yaml(tmp_path):
    write(tmp_path, GUARDED.replace("platfrom", "platform"), teams=None)

    assert problems(tmp_path) == [
        f"{tmp_path / 'deploy.yaml'}:3: permissions.start.groups[0]: team 'platform' is not in teams.yaml",
        f"{tmp_path / 'deploy.yaml'}:6: permissions.cancel.groups[0]: team 'platform' is not in teams.yaml",
    ]


def test_known_teams_load(tmp_path):
    write(tmp_path, GUARDED.replace("platfrom", "platform"))

    definition = load_workflows(tmp_path)["deploy"]

    assert definition.permissions.cancel == Who(users=["ops@example.com"], groups=["platform"])
    assert definition.permissions.retry is None


def test_a_rule_that_names_nobody_is_refused():
    text = "name: deploy\npermissions:\n  skip: {}\nsteps:\n  - {id: one, run: echo}\n"

    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(text, "deploy.yaml")

    assert caught.value.problems == [
        "deploy.yaml:3: permissions.skip: "
        "name at least one of users, groups or any_member: true (or leave it out)"
    ]


def test_an_empty_user_and_an_unknown_action_are_refused():
    text = (
        "name: deploy\npermissions:\n  retry: {users: ['  ']}\n  approve: {users: [a@b.c]}\n"
        "steps:\n  - {id: one, run: echo}\n"
    )

    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(text, "deploy.yaml")

    assert caught.value.problems == ["deploy.yaml:4: permissions.approve: unknown field"]
    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(text.replace("  approve: {users: [a@b.c]}\n", ""), "deploy.yaml")
    assert caught.value.problems == [
        "deploy.yaml:3: permissions.retry.users[0]: a user is an e-mail address or IAM principal"
    ]


def test_any_member_needs_a_team(tmp_path):
    write(tmp_path, GUARDED.replace("platfrom", "platform"), teams="teams: {}\n")
    (tmp_path / "deploy.yaml").write_text(
        "name: deploy\npermissions:\n  skip: {any_member: true}\nsteps:\n  - {id: one, run: echo}\n"
    )

    assert problems(tmp_path) == [
        f"{tmp_path / 'deploy.yaml'}:3: permissions.skip.any_member: "
        "teams.yaml names no team, so no one is a member"
    ]


@pytest.mark.parametrize(
    ("who", "caller", "allowed"),
    [
        (None, "anyone", True),
        (Who(users=["Ops@Example.com"]), "ops@example.COM", True),
        (Who(users=["ops@example.com"]), "jane@example.com", False),
        (Who(groups=["platform"]), "jane@example.com", True),
        (Who(groups=["platform"]), "quinn@example.com", False),
        (Who(any_member=True), "quinn@example.com", True),
        (Who(any_member=True), "anonymous", False),
    ],
)
def test_who_a_rule_allows(who, caller, allowed):
    assert may(who, caller, TEAMS) is allowed


def test_describe_names_teams_then_users_then_any_member():
    who = Who(users=["ops@example.com"], groups=["platform", "qa"], any_member=True)

    assert (
        describe(who)
        == "team platform or team qa or user ops@example.com or any member of a team in teams.yaml"
    )


def test_check_refuses_naming_the_rule_and_the_caller():
    definition = parse_workflow(GUARDED.replace("platfrom", "platform"))
    permissions = Permissions(Catalog({"deploy": definition}, TEAMS))

    with pytest.raises(NotAllowed) as caught:
        permissions.check("deploy", "start", "quinn@example.com")

    assert caught.value.message == "start of deploy needs team platform (you are quinn@example.com)"
    permissions.check("deploy", "start", "jane@example.com")
    permissions.check("deploy", "retry", "quinn@example.com")  # not named: open to anyone
    permissions.check("gone", "cancel", "quinn@example.com")  # a workflow no longer defined: open


def test_hints_keep_what_the_caller_may_do_and_the_approval_decisions():
    definition = parse_workflow(GUARDED.replace("platfrom", "platform"))
    permissions = Permissions(Catalog({"deploy": definition}, TEAMS))
    hints = ["cancel", "cancel_cleanup", "force_cancel", "retry", "approve", "reject"]

    assert permissions.hints("deploy", "quinn@example.com", hints) == ["retry", "approve", "reject"]
    assert permissions.hints("deploy", "jane@example.com", hints) == hints
    assert permissions.hints("deploy", "ops@example.com", hints) == hints
