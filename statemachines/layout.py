"""Turn a step DAG into nested sequences and parallel blocks that ASL can express.

Exact for series-parallel graphs (chains, fan-out/fan-in, independent branches); for other DAGs
the split is conservative: a step may wait for an unrelated sibling, never run before its needs.
"""

from __future__ import annotations

from dataclasses import dataclass

Unit = "str | Parallel"


@dataclass(frozen=True)
class Parallel:
    """Branches that run at the same time; each is a sequence of units."""

    branches: tuple[tuple[str | Parallel, ...], ...]


def _components(nodes: list[str], deps: dict[str, list[str]]) -> list[list[str]]:
    parent = {n: n for n in nodes}

    def find(n: str) -> str:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for node in nodes:
        for dep in deps[node]:
            if dep in parent:
                parent[find(node)] = find(dep)
    groups: dict[str, list[str]] = {}
    for node in nodes:  # keeps definition order inside and across components
        groups.setdefault(find(node), []).append(node)
    return list(groups.values())


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


def _sequence(nodes: list[str], deps: dict[str, list[str]], order: dict[str, int]) -> list[str | Parallel]:
    """Lay out a set of steps (closed under the order it was split in) as a sequence of units."""
    if not nodes:
        return []
    components = _components(nodes, deps)
    if len(components) > 1:
        branches = tuple(tuple(_sequence(c, deps, order)) for c in components)
        return [Parallel(branches)]
    inside = set(nodes)
    local = {n: [d for d in deps[n] if d in inside] for n in nodes}
    roots = [n for n in nodes if not local[n]]
    if len(nodes) == 1:
        return [nodes[0]]
    if len(roots) == 1:
        # With one root every other step descends from it: the root, then the rest.
        root = roots[0]
        return [root, *_sequence([n for n in nodes if n != root], deps, order)]
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
