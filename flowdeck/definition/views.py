"""The API's answers about workflows: the list, one workflow with its graph, and its paused state."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from flowdeck.runs.views import View


class WorkflowState(View):
    """Whether the workflow starts runs, and who paused (or resumed) it, when and why."""

    active: bool
    paused_by: str | None
    paused_at: str | None
    pause_reason: str | None
    resumed_by: str | None
    resumed_at: str | None
    resume_reason: str | None


class WorkflowSummary(WorkflowState):
    """One workflow of GET /workflows."""

    name: str
    description: str
    inputs: dict[str, dict[str, Any]] = Field(description="Declared inputs by name: type, default, ...")
    steps: list[str]
    triggers: list[dict[str, Any]]
    actions: list[str] = Field(
        description="What the caller may do to it: `start` (a manual run), `pause` (pause or resume)."
    )


class WorkflowList(View):
    """GET /workflows."""

    workflows: list[WorkflowSummary]


class GraphNode(View):
    """A step in the drawn graph."""

    id: str
    kind: str
    name: str


class Graph(View):
    """The compiled graph: steps, dependency edges [from, to], and the layout (parallel blocks nested)."""

    nodes: list[GraphNode]
    edges: list[list[str]]
    layout: list[Any]


class WorkflowDetail(WorkflowSummary):
    """GET /workflows/{wf}: the definition, its graph and the compiled Step Functions states."""

    definition: dict[str, Any]
    graph: Graph
    states: dict[str, Any]


class WorkflowStateChanged(WorkflowState):
    """PUT /workflows/{wf}/state: the state now, and whether this call changed it."""

    workflow: str
    changed: bool
    triggers: list[dict[str, str]] = Field(description="On AWS, the schedules and rules switched.")
