"""Turn a step DAG into nested sequences and parallel blocks that ASL can express.

Exact for series-parallel graphs (chains, fan-out/fan-in, independent branches); for other DAGs
the split is conservative: a step may wait for an unrelated sibling, never run before its needs.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Parallel:
    """Branches that run at the same time; each is a sequence of units."""

    branches: tuple[tuple[str | Parallel, ...], ...]


def _linked_groups(nodes: list[str], links: Iterable[tuple[str, str]]) -> list[list[str]]:
    """Connected groups of `nodes` under `links` (union-find), each in definition order."""
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for first, second in links:
        parent[find(first)] = find(second)
    groups: dict[str, list[str]] = {}
    for node in nodes:  # keeps definition order inside and across groups
        groups.setdefault(find(node), []).append(node)
    return list(groups.values())


def _components(nodes: list[str], deps: dict[str, list[str]]) -> list[list[str]]:
    """Steps connected by needs (in either direction) within `nodes`."""
    inside = set(nodes)
    return _linked_groups(nodes, ((node, dep) for node in nodes for dep in deps[node] if dep in inside))


def _descendants(start: str, nodes: list[str], deps: dict[str, list[str]]) -> set[str]:
    inside = set(nodes)
    children: dict[str, list[str]] = {n: [] for n in nodes}
    for node in nodes:
        for dep in deps[node]:
            if dep in inside:
                children[dep].append(node)
    seen = {start}
    stack = [start]
    while stack:
        for child in children[stack.pop()]:
            if child not in seen:
                seen.add(child)
                stack.append(child)
    return seen


def _series_groups(nodes: list[str], deps: dict[str, list[str]]) -> list[list[str]]:
    """Split steps into groups that must run one after another (co-comparability components).

    Two steps with no order between them belong to one group; every step of an earlier group is
    an ancestor of every step of a later one, so the groups form a sequence.
    """
    inside = set(nodes)
    ancestors: dict[str, set[str]] = {}

    def ancestors_of(node: str) -> set[str]:
        if node not in ancestors:
            found: set[str] = set()
            for dep in deps[node]:
                if dep in inside:
                    found |= {dep} | ancestors_of(dep)
            ancestors[node] = found
        return ancestors[node]

    unordered = (
        (first, second)
        for i, first in enumerate(nodes)
        for second in nodes[i + 1 :]
        if first not in ancestors_of(second) and second not in ancestors_of(first)
    )
    groups = _linked_groups(nodes, unordered)
    return sorted(groups, key=lambda group: min(len(ancestors_of(n)) for n in group))


def _sequence(nodes: list[str], deps: dict[str, list[str]], order: dict[str, int]) -> list[str | Parallel]:
    """Lay out a set of steps (closed under the order it was split in) as a sequence of units."""
    if not nodes:
        return []
    components = _components(nodes, deps)
    if len(components) > 1:
        branches = tuple(tuple(_sequence(c, deps, order)) for c in components)
        return [Parallel(branches)]
    if len(nodes) == 1:
        return [nodes[0]]
    groups = _series_groups(nodes, deps)
    if len(groups) > 1:
        # A series composition: each group runs after everything in the groups before it.
        return [unit for group in groups for unit in _sequence(group, deps, order)]
    # Not series-parallel here: a conservative split, never running a step before its needs.
    inside = set(nodes)
    local = {n: [d for d in deps[n] if d in inside] for n in nodes}
    joins = sorted((n for n in nodes if len(local[n]) > 1), key=order.__getitem__)
    if not joins:
        raise AssertionError("a connected graph with several roots has a join")
    # Split before the earliest join: everything that is not downstream of it runs first.
    tail = _descendants(joins[0], nodes, deps)
    head = [n for n in nodes if n not in tail]
    return [*_sequence(head, deps, order), *_sequence([n for n in nodes if n in tail], deps, order)]


def layout(step_ids: list[str], deps: dict[str, list[str]]) -> list[str | Parallel]:
    """Sequence of units for the whole workflow; `deps` maps each step to the steps it needs."""
    order = {step_id: index for index, step_id in enumerate(step_ids)}
    return _sequence(list(step_ids), deps, order)
