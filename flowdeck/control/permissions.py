"""Who may start, cancel, retry, skip and pause a workflow: the `permissions:` of its definition.

Every use case behind these actions asks `Permissions.check` before it writes anything, so the REST
API, the CLI (which calls it) and the dashboard (which calls it too) meet the same rule, and a
refusal records nothing. An action the definition does not name is open to anyone who can reach
the API (on AWS: anyone the API's IAM policy lets sign a request). Teams are `teams.yaml`'s, read
with the definitions. Triggers (schedules, webhooks, GitHub pushes, EventBridge events) are not
people: their own secret or rule authorizes them, so `start` does not apply to them. Approvals keep
their own policy (`approvers:` of the step).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final, Literal

from flowdeck.approvals.directory import Directory, normalise_email
from flowdeck.catalog import Catalog
from flowdeck.definition.models import Who
from flowdeck.errors import NotAllowed

Action = Literal["start", "cancel", "retry", "skip", "pause"]

# What each `actions` hint of a run view needs (flowdeck.runs.actions); approve/reject follow the
# approval's own policy, decided by its endpoint.
HINT_NEEDS: Final[dict[str, Action]] = {
    "cancel": "cancel",
    "cancel_cleanup": "cancel",
    "force_cancel": "cancel",
    "retry": "retry",
    "retry_step": "retry",
    "retry_from_here": "retry",
    "skip": "skip",
}


def may(who: Who | None, caller: str, directory: Directory) -> bool:
    """True when `who` is unset (open to all) or names the caller: as a user, a team member or any member."""
    if who is None:
        return True
    person = normalise_email(caller)
    if person in {normalise_email(user) for user in who.users}:
        return True
    if any(person in directory.members(group) for group in who.groups):
        return True
    return who.any_member and person in directory.everyone()


def describe(who: Who) -> str:
    """What a rule asks for, for people: `team platform or user ops@example.com`."""
    parts = [f"team {group}" for group in who.groups]
    parts += [f"user {user}" for user in who.users]
    if who.any_member:
        parts.append("any member of a team in teams.yaml")
    return " or ".join(parts)


class Permissions:
    """The permissions of the catalog's workflows, checked against the teams read with them."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog

    @property
    def directory(self) -> Directory:
        return self.catalog.teams

    def rule(self, workflow: str, action: Action) -> Who | None:
        """The workflow's rule for `action`; None (open) for an action it does not name or a workflow
        the catalog no longer knows (its runs stay manageable as before)."""
        definition = self.catalog.definitions.get(workflow)
        return getattr(definition.permissions, action) if definition is not None else None

    def allows(self, workflow: str, action: Action, caller: str) -> bool:
        return may(self.rule(workflow, action), caller, self.directory)

    def check(self, workflow: str, action: Action, caller: str) -> None:
        """Raise NotAllowed (403) naming what `action` of `workflow` needs, unless the caller has it."""
        who = self.rule(workflow, action)
        if who is None or may(who, caller, self.directory):
            return
        raise NotAllowed(f"{action} of {workflow} needs {describe(who)} (you are {caller})")

    def hints(self, workflow: str, caller: str, actions: Iterable[str]) -> list[str]:
        """The `actions` hints the caller may follow: the others would only be refused."""
        return [a for a in actions if a not in HINT_NEEDS or self.allows(workflow, HINT_NEEDS[a], caller)]

    def workflow_actions(self, workflow: str, caller: str) -> list[str]:
        """`start` and `pause` (pause and resume) when the caller may: the workflow page's hints."""
        return [a for a in ("start", "pause") if self.allows(workflow, a, caller)]


def open_to_all() -> Permissions:
    """Permissions of no workflow, so everything is allowed: for tests of a use case without workflows."""
    return Permissions(Catalog({}))
