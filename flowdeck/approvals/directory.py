"""Who is in which team, and their Slack ids: `teams.yaml` in the workflows folder.

```yaml
teams:
  platform: [jane@example.com, sam@example.com]
people:
  jane@example.com: {slack: U0JANE}
```
A missing file is an empty directory (only `users` policies can then be met).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

TEAMS_FILE = "teams.yaml"


def normalise_email(value: str) -> str:
    """Approver identities are e-mail addresses, compared lower-cased."""
    return value.strip().lower()


class Person(BaseModel):
    model_config = ConfigDict(extra="forbid")
    slack: str | None = None


class TeamsFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    teams: dict[str, list[str]] = Field(default_factory=dict)
    people: dict[str, Person] = Field(default_factory=dict)

    @field_validator("teams")
    @classmethod
    def _lower_members(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        return {team: [normalise_email(m) for m in members] for team, members in value.items()}

    @field_validator("people")
    @classmethod
    def _lower_people(cls, value: dict[str, Person]) -> dict[str, Person]:
        return {normalise_email(email): person for email, person in value.items()}


class DirectoryError(ValueError):
    """teams.yaml exists but cannot be read: named with the file, never a traceback."""


class Directory:
    """Teams (the `groups` of an approval policy), everyone in any team, and Slack id <-> email."""

    def __init__(self, data: TeamsFile | None = None, source: Path | None = None) -> None:
        self.data = data or TeamsFile()
        self.source = source

    @classmethod
    def load(cls, workflows_dir: Path) -> Directory:
        """Read `<workflows_dir>/teams.yaml`; an absent file is an empty directory."""
        path = Path(workflows_dir) / TEAMS_FILE
        if not path.is_file():
            return cls(None, None)
        try:
            raw: Any = yaml.safe_load(path.read_text()) or {}
            return cls(TeamsFile.model_validate(raw), path)
        except (yaml.YAMLError, ValidationError, OSError) as exc:
            raise DirectoryError(f"{path}: {exc}") from None

    @property
    def exists(self) -> bool:
        return self.source is not None

    def teams(self) -> set[str]:
        return set(self.data.teams)

    def members(self, group: str) -> set[str]:
        return set(self.data.teams.get(group, []))

    def everyone(self) -> set[str]:
        return {member for members in self.data.teams.values() for member in members}

    def email_for_slack(self, user_id: str) -> str | None:
        return next((email for email, p in self.data.people.items() if p.slack == user_id), None)

    def slack_for_email(self, email: str) -> str | None:
        person = self.data.people.get(normalise_email(email))
        return person.slack if person else None


def load_directory() -> Directory:
    """The directory of the configured workflows folder."""
    from flowdeck.config import get_settings

    return Directory.load(get_settings().workflows_dir)
