"""Who may decide an approval: listed users, members of listed groups, or any team member."""

from __future__ import annotations

from typing import Any

from flowdeck.approvals.directory import Directory, normalise_email


def approvers_of(policy: dict[str, Any], directory: Directory) -> set[str]:
    """Everyone the policy names today (users, group members, everyone in a team for any_member)."""
    names = {normalise_email(u) for u in policy.get("users", [])}
    for group in policy.get("groups", []):
        names |= directory.members(group)
    if policy.get("any_member"):
        names |= directory.everyone()
    return names


def may_decide(approver: str, policy: dict[str, Any], directory: Directory) -> bool:
    """True if `approver` is one the policy allows (checked against the directory at decision time)."""
    return normalise_email(approver) in approvers_of(policy, directory)


def describe(policy: dict[str, Any]) -> str:
    """A short line for people: `jane@example.com, sam@example.com, group platform`."""
    parts = [*policy.get("users", []), *(f"group {g}" for g in policy.get("groups", []))]
    if policy.get("any_member"):
        parts.append("any team member")
    return ", ".join(parts) or "nobody"
