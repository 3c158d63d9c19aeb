"""The loaded workflow definitions and what the API shows of each (definition and compiled graph)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flowdeck.approvals.directory import Directory
from flowdeck.definition import WorkflowDefinition, load_workflows
from flowdeck.definition.loader import load_workflow
from flowdeck.errors import WorkflowNotFound
from statemachines import Parallel, compile_workflow, layout


def _layout_json(units: list[Any]) -> list[Any]:
    return [
        u if isinstance(u, str) else {"parallel": [_layout_json(list(b)) for b in u.branches]} for u in units
    ]


class Catalog:
    def __init__(self, definitions: dict[str, WorkflowDefinition], teams: Directory | None = None) -> None:
        """`teams`: the teams.yaml read with the definitions (the teams their `permissions` name)."""
        self.definitions = definitions
        self.teams = teams or Directory()

    @classmethod
    def from_dir(cls, directory: Path) -> Catalog:
        # load_workflows refuses a broken teams.yaml, so reading it again here cannot fail.
        return cls(load_workflows(directory), Directory.load(directory))

    def get(self, name: str) -> WorkflowDefinition:
        try:
            return self.definitions[name]
        except KeyError:
            raise WorkflowNotFound(f"no workflow named {name!r}") from None

    def names(self) -> list[str]:
        return sorted(self.definitions)

    @staticmethod
    def graph(definition: WorkflowDefinition) -> dict[str, Any]:
        deps = definition.dependencies()
        return {
            "nodes": [{"id": s.id, "kind": s.kind, "name": s.name or s.id} for s in definition.steps],
            "edges": [[need, step] for step, needs in deps.items() for need in needs],
            "layout": _layout_json(layout([s.id for s in definition.steps], deps)),
        }

    def summary(self, definition: WorkflowDefinition) -> dict[str, Any]:
        return {
            "name": definition.name,
            "description": definition.description,
            "inputs": {
                k: v.model_dump(exclude_defaults=True) | {"type": v.type}
                for k, v in definition.inputs.items()
            },
            "steps": [s.id for s in definition.steps],
            "triggers": [t.model_dump(exclude_none=True) for t in definition.triggers],
        }

    def detail(self, definition: WorkflowDefinition) -> dict[str, Any]:
        return self.summary(definition) | {
            "definition": definition.model_dump(by_alias=True, exclude_none=True),
            "graph": self.graph(definition),
            "states": compile_workflow(definition),
        }


__all__ = ["Catalog", "Parallel"]


def load_definition(directory: Path, workflow: str) -> WorkflowDefinition:
    """The workflow's definition: its own file when named after it (one parse), else the whole folder's."""
    path = directory / f"{workflow}.yaml"
    if path.is_file():
        definition = load_workflow(path)
        if definition.name == workflow:
            return definition
    return Catalog.from_dir(directory).get(workflow)
