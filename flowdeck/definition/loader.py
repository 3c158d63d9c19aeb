"""Load workflow files: YAML with line numbers, model validation, graph checks, one error list."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import ValidationError

from flowdeck.approvals.directory import TEAMS_FILE, Directory, DirectoryError
from flowdeck.definition import models
from flowdeck.definition.checks import graph_problems, permission_problems, raw_needs_problems
from flowdeck.definition.models import WorkflowDefinition
from flowdeck.errors import InvalidDefinition

Loc = tuple[str | int, ...]

PATTERN_HELP = {
    models.WORKFLOW_NAME_PATTERN: "use 1-64 lowercase letters, digits and -",
    models.STEP_ID_PATTERN: "use 1-64 lowercase letters, digits, _ and -",
    models.INPUT_NAME_PATTERN: "an input name is a letter or _ then letters, digits and _ (at most 64)",
    models.ENV_NAME_PATTERN: "an environment variable name is a letter or _ then letters, digits and _",
}


class _LineMap:
    """Maps a field path such as ("steps", 2, "timeout") to the line it was written on."""

    def __init__(self) -> None:
        self.lines: dict[Loc, int] = {}
        self.duplicates: list[tuple[Loc, int]] = []

    def walk(self, node: yaml.Node, loc: Loc = (), active: frozenset[int] = frozenset()) -> None:
        if id(node) in active:  # a recursive alias (`&a [*a]`): its lines are already mapped
            return
        active = active | {id(node)}
        self.lines[loc] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            seen: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                if key in seen:
                    self.duplicates.append(((*loc, key), key_node.start_mark.line + 1))
                seen.add(key)
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
                self.walk(value_node, (*loc, key), active)
                # Keep the key's own line for the field itself, not the first line of its value.
                self.lines[(*loc, key)] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                self.walk(item, (*loc, index), active)

    def line_of(self, loc: Loc) -> int:
        while loc and loc not in self.lines:
            loc = loc[:-1]
        return self.lines.get(loc, 1)


def format_loc(loc: Loc) -> str:
    """("steps", 2, "timeout") -> "steps[2].timeout"."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def _pydantic_problems(error: ValidationError) -> list[tuple[Loc, str]]:
    problems = []
    for item in error.errors():
        # Drop pydantic's union/validator tags ("function-after[...]") that mean nothing to users.
        loc = tuple(p for p in item["loc"] if not (isinstance(p, str) and "[" in p))
        loc = tuple("if" if p == "if_" else p for p in loc)
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            message = "unknown field"
        elif item["type"] == "missing":
            message = "required field is missing"
        elif item["type"] == "string_pattern_mismatch":
            pattern = (item.get("ctx") or {}).get("pattern", "")
            message = f"{item['input']!r} is not valid: {PATTERN_HELP.get(pattern, 'must match ' + pattern)}"
        problems.append((loc, message))
    return problems


def parse_workflow(
    text: str, source: str = "<workflow>", teams: set[str] | None = None
) -> WorkflowDefinition:
    """Parse and validate one definition; raise InvalidDefinition naming file, line and field.

    `teams` (those of teams.yaml) checks the teams that `permissions` name; None leaves them unchecked.
    """
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc)
        raise InvalidDefinition([f"{source}:{line}: YAML syntax error: {problem}"]) from None
    if root is None or not isinstance(data, dict):
        raise InvalidDefinition([f"{source}:1: a workflow file holds a mapping with name and steps"])
    lines = _LineMap()
    lines.walk(root)
    problems: list[tuple[Loc, str]] = [(loc, "duplicate key") for loc, _ in lines.duplicates]
    definition = None
    try:
        definition = WorkflowDefinition.model_validate(data)
    except ValidationError as exc:
        problems += _pydantic_problems(exc)
        problems += [p for p in raw_needs_problems(data) if p not in problems]
    if definition is not None:
        problems += graph_problems(definition) + permission_problems(definition, teams)
    if problems or definition is None:
        raise InvalidDefinition(
            [f"{source}:{lines.line_of(loc)}: {format_loc(loc)}: {message}" for loc, message in problems]
        )
    return definition


def load_workflow(path: Path, teams: set[str] | None = None) -> WorkflowDefinition:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidDefinition([f"{path}:1: cannot read the file: {exc.__class__.__name__}"]) from None
    return parse_workflow(text, str(path), teams)


def known_teams(directory: Path) -> set[str] | None:
    """The teams of the folder's teams.yaml (none without one); None when it is broken (reported apart)."""
    try:
        return Directory.load(directory).teams()
    except DirectoryError:
        return None


def load_workflows(directory: Path) -> dict[str, WorkflowDefinition]:
    """Every `*.yaml`/`*.yml` in a folder, by name; all problems of all files in one error."""
    problems: list[str] = []
    found: dict[str, WorkflowDefinition] = {}
    sources: dict[str, Path] = {}
    paths = sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])
    # teams.yaml is the approvers' directory (flowdeck.approvals.directory), not a workflow.
    paths = [path for path in paths if path.name != TEAMS_FILE]
    teams = known_teams(directory)
    for path in paths:
        try:
            definition = load_workflow(path, teams)
        except InvalidDefinition as exc:
            problems += exc.problems
            continue
        if definition.name in found:
            first = sources[definition.name]
            problems.append(f"{path}:1: name: workflow name {definition.name!r} is already used by {first}")
            continue
        found[definition.name] = definition
        sources[definition.name] = path
    problems += unknown_group_problems(directory, found, sources)
    if problems:
        raise InvalidDefinition(problems)
    return found


def unknown_group_problems(
    directory: Path, found: dict[str, WorkflowDefinition], sources: dict[str, Path]
) -> list[str]:
    """Approval groups that teams.yaml (when present) does not define, and a teams.yaml that is broken."""
    try:
        teams = Directory.load(directory)
    except DirectoryError as exc:
        return [f"{exc}"]
    if not teams.exists:
        return []
    problems = []
    for name, definition in found.items():
        for index, step in enumerate(definition.steps):
            for group in step.approval.approvers.groups if step.approval else []:
                if group not in teams.teams():
                    problems.append(
                        f"{sources[name]}:1: steps.{index}.approval.approvers.groups: "
                        f"group {group!r} is not a team in {teams.source}"
                    )
    return problems
