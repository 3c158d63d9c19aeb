"""GitHub push deliveries: what was pushed where, and which `git` triggers it matches."""

from __future__ import annotations

from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Any, Final

from flowdeck.definition.models import GitTrigger

BRANCH_PREFIX: Final = "refs/heads/"
# A deleted branch's push names this as the new commit.
NO_COMMIT: Final = "0" * 40


@dataclass(frozen=True)
class Push:
    repo: str
    ref: str
    commit: str
    pusher: str
    deleted: bool

    @property
    def branch(self) -> str | None:
        """The branch pushed to; None for a tag."""
        return self.ref[len(BRANCH_PREFIX) :] if self.ref.startswith(BRANCH_PREFIX) else None

    def inputs(self) -> dict[str, str]:
        return {"commit": self.commit, "ref": self.ref, "branch": self.branch or "", "repo": self.repo}


def claimed_repo(payload: Any) -> str | None:
    """The repository a payload names (any event), unverified: only to file a refusal under."""
    repository = payload.get("repository") if isinstance(payload, dict) else None
    name = repository.get("full_name") if isinstance(repository, dict) else None
    return name if isinstance(name, str) and name else None


def parse_push(payload: Any) -> Push:
    """A push event's fields; ValueError when the payload is not a push GitHub would send."""
    if not isinstance(payload, dict):
        raise ValueError("a push event is a JSON object")
    repo = claimed_repo(payload)
    ref, commit = payload.get("ref"), payload.get("after")
    pusher = payload.get("pusher")
    pusher_name = pusher.get("name") if isinstance(pusher, dict) else None
    if not repo or not isinstance(ref, str) or not isinstance(commit, str):
        raise ValueError("a push event has repository.full_name, ref and after")
    return Push(
        repo=repo,
        ref=ref,
        commit=commit,
        pusher=pusher_name if isinstance(pusher_name, str) and pusher_name else "github",
        deleted=bool(payload.get("deleted")) or commit == NO_COMMIT,
    )


def same_repo(trigger: GitTrigger, repo: str) -> bool:
    """GitHub repository names are case-insensitive."""
    return trigger.repo.lower() == repo.lower()


def branch_matches(trigger: GitTrigger, branch: str) -> bool:
    """`branches` entries are exact names or shell patterns (`release/*`)."""
    return any(fnmatchcase(branch, pattern) for pattern in trigger.branches)
