"""Checks across fields of a valid-shaped definition: the DAG, references, defaults, expressions."""

from __future__ import annotations

from typing import Any

from flowdeck.definition.inputs import value_problem
from flowdeck.definition.models import Approval, Permissions, WorkflowDefinition
from flowdeck.expressions import check_template, condition_references
from flowdeck.triggers.events import event_problems
from flowdeck.triggers.mapping import path_problem
from flowdeck.triggers.schedules import expression_problems, schedule_triggers

Loc = tuple[str | int, ...]

# Parts of SPEC §1 that later releases bring; refused clearly rather than half-run.
_NOT_YET: dict[str, str] = {}


def approval_problems(approval: Approval) -> list[tuple[Loc, str]]:
    """Policies no one could ever meet (the groups are checked against teams.yaml by the loader)."""
    who = approval.approvers
    problems: list[tuple[Loc, str]] = []
    if not (who.users or who.groups or who.any_member):
        problems.append((("approvers",), "name at least one of users, groups or any_member: true"))
    elif not (who.groups or who.any_member) and approval.min_approvals > len(set(who.users)):
        problems.append(
            (
                ("min_approvals",),
                f"{approval.min_approvals} approvals needed but only {len(set(who.users))} users listed",
            )
        )
    if approval.timeout < 1:
        problems.append((("timeout",), "an approval needs a timeout of at least 1s"))
    return problems


def permission_problems(definition: WorkflowDefinition, teams: set[str] | None) -> list[tuple[Loc, str]]:
    """Rules no one could meet: naming nobody, an empty user, a team teams.yaml does not define.

    `teams` is None when the teams are not known here (one file parsed alone): then only the shape is checked.
    """
    problems: list[tuple[Loc, str]] = []
    for action in Permissions.model_fields:
        who = getattr(definition.permissions, action)
        if who is None:
            continue
        loc: Loc = ("permissions", action)
        if not (who.users or who.groups or who.any_member):
            problems.append((loc, "name at least one of users, groups or any_member: true (or leave it out)"))
        for index, user in enumerate(who.users):
            if not user.strip():
                problems.append(((*loc, "users", index), "a user is an e-mail address or IAM principal"))
        if teams is None:
            continue
        for index, group in enumerate(who.groups):
            if group not in teams:
                problems.append(((*loc, "groups", index), f"team {group!r} is not in teams.yaml"))
        if who.any_member and not teams:
            problems.append(((*loc, "any_member"), "teams.yaml names no team, so no one is a member"))
    return problems


def raw_needs_problems(data: dict[str, Any]) -> list[tuple[Loc, str]]:
    """Unknown or self `needs` read from the raw file, for a definition whose fields do not validate
    (the graph checks need a valid model): so one pass reports a bad field and a bad edge together."""
    steps = data.get("steps")
    if not isinstance(steps, list):
        return []
    ids = [step.get("id") if isinstance(step, dict) else None for step in steps]
    problems: list[tuple[Loc, str]] = []
    for index, step in enumerate(steps):
        needs = step.get("needs") if isinstance(step, dict) else None
        for need in needs if isinstance(needs, list) else []:
            if not isinstance(need, str):
                continue  # the model's own check names it
            if need not in ids:
                problems.append((("steps", index, "needs"), f"unknown step {need!r}"))
            elif need == ids[index]:
                problems.append((("steps", index, "needs"), "a step cannot need itself"))
    return problems


def _ancestors(deps: dict[str, list[str]], step_id: str) -> set[str]:
    seen: set[str] = set()
    stack = list(deps.get(step_id, []))
    while stack:
        current = stack.pop()
        if current not in seen:
            seen.add(current)
            stack.extend(deps.get(current, []))
    return seen


def _find_cycle(deps: dict[str, list[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in deps.get(node, []):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt in deps and state.get(nxt) is None and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in deps:
        if state.get(node) is None and (cycle := visit(node)):
            return cycle
    return None


def schedule_problems(definition: WorkflowDefinition) -> list[tuple[Loc, str]]:
    """Bad expressions, time zones and inputs of a definition's schedules, each with its field."""
    problems: list[tuple[Loc, str]] = []
    for index, schedule in schedule_triggers(definition):
        loc: Loc = ("triggers", index, "schedule")
        problems += expression_problems(schedule, loc)
        for name, value in schedule.inputs.items():
            spec = definition.inputs.get(name)
            if spec is None:
                problems.append(((*loc, "inputs", name), "unknown input: declare it in inputs"))
            elif why := value_problem(spec, value):
                problems.append(((*loc, "inputs", name), why))
        for name, spec in definition.inputs.items():
            if spec.required and spec.default is None and name not in schedule.inputs:
                problems.append(((*loc, "inputs"), f"required input {name!r} has no default: give it here"))
    return problems


def graph_problems(definition: WorkflowDefinition) -> list[tuple[Loc, str]]:
    problems: list[tuple[Loc, str]] = []
    for name, spec in definition.inputs.items():
        if spec.default is not None and (why := value_problem(spec, spec.default)):
            problems.append((("inputs", name, "default"), why))
    if definition.name == "github":
        # POST /hooks/github is GitHub's push endpoint: a workflow of that name could never get a webhook.
        problems.append((("name",), "'github' is reserved (POST /hooks/github receives GitHub pushes)"))
    for index, trigger in enumerate(definition.triggers):
        for input_name, path in (trigger.webhook.inputs if trigger.webhook else {}).items():
            loc: Loc = ("triggers", index, "webhook", "inputs", input_name)
            if input_name not in definition.inputs:
                problems.append((loc, f"unknown input {input_name!r}: declare it under inputs"))
            elif why := path_problem(path):
                problems.append((loc, why))
    problems += schedule_problems(definition) + event_problems(definition)

    first_index: dict[str, int] = {}
    for index, step in enumerate(definition.steps):
        if step.id in first_index:
            problems.append(
                (
                    ("steps", index, "id"),
                    f"duplicate step id {step.id!r} (also steps[{first_index[step.id]}])",
                )
            )
        else:
            first_index[step.id] = index
    if any(loc[-1] == "id" for loc, _ in problems):
        return problems

    deps = definition.dependencies()
    # The checks below walk the graph, so they need every edge to exist (other problems may stand).
    need_problems: list[tuple[Loc, str]] = []
    for index, step in enumerate(definition.steps):
        for need in step.needs or []:
            if need not in first_index:
                need_problems.append((("steps", index, "needs"), f"unknown step {need!r}"))
            elif need == step.id:
                need_problems.append((("steps", index, "needs"), "a step cannot need itself"))
    if need_problems:
        return problems + need_problems
    if cycle := _find_cycle(deps):
        index = first_index[cycle[0]]
        return [*problems, (("steps", index, "needs"), "cycle in needs: " + " -> ".join(reversed(cycle)))]

    for index, step in enumerate(definition.steps):
        upstream = _ancestors(deps, step.id)
        if step.if_ is not None:
            try:
                for ref in condition_references(step.if_):
                    if ref not in first_index:
                        problems.append((("steps", index, "if"), f"unknown step {ref!r}"))
                    elif ref not in upstream:
                        problems.append(
                            (
                                ("steps", index, "if"),
                                f"step {ref!r} does not run before {step.id!r}: add it to needs",
                            )
                        )
            except ValueError as exc:
                problems.append((("steps", index, "if"), str(exc)))
        for position, item in enumerate(step.artifacts.download):
            source = item.partition(":")[0]
            if source not in upstream:
                problems.append(
                    (
                        ("steps", index, "artifacts", "download", position),
                        f"step {source!r} does not run before {step.id!r}",
                    )
                )
        messages = [("notify", "message", step.notify.message)] if step.notify else []
        if step.approval:
            messages.append(("approval", "message", step.approval.message))
        for part, field, text in messages:
            try:
                check_template(text)
            except ValueError as exc:
                problems.append((("steps", index, part, field), str(exc)))
        if step.approval:
            problems += [
                (("steps", index, "approval", *loc), why) for loc, why in approval_problems(step.approval)
            ]
        if step.kind in _NOT_YET:
            problems.append((("steps", index, step.kind), _NOT_YET[step.kind]))
    return problems
