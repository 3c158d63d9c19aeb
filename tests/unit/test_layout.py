"""Laying out a step DAG as sequences and Parallel blocks that ASL can express."""

from __future__ import annotations

import itertools
import random

import pytest

from statemachines.layout import Parallel, layout

Deps = dict[str, list[str]]


def lay(deps: Deps) -> list[str | Parallel]:
    return layout(list(deps), deps)


def order_of(units: list[str | Parallel]) -> tuple[list[str], set[tuple[str, str]]]:
    """Every step in the layout, and the pairs (x, y) where x surely ends before y starts.

    A unit of a sequence runs after everything in the earlier units; the branches of one
    Parallel run side by side, unordered.
    """
    steps: list[str] = []
    before: set[tuple[str, str]] = set()

    def sequence(seq: tuple[str | Parallel, ...] | list[str | Parallel]) -> list[str]:
        done: list[str] = []
        for unit in seq:
            inside = one(unit)
            before.update(itertools.product(done, inside))
            done += inside
        return done

    def one(unit: str | Parallel) -> list[str]:
        if isinstance(unit, str):
            steps.append(unit)
            return [unit]
        assert len(unit.branches) >= 2, f"a Parallel with fewer than two branches: {unit}"
        inside: list[str] = []
        for branch in unit.branches:
            assert branch, f"an empty branch in {unit}"
            inside += sequence(branch)
        return inside

    sequence(units)
    return steps, before


def closure(deps: Deps) -> set[tuple[str, str]]:
    """(x, y) for every x that y needs, directly or not."""
    pairs: set[tuple[str, str]] = set()

    def ancestors(node: str, seen: set[str]) -> set[str]:
        for dep in deps[node]:
            if dep not in seen:
                seen.add(dep)
                ancestors(dep, seen)
        return seen

    for node in deps:
        pairs.update((a, node) for a in ancestors(node, set()))
    return pairs


def assert_respects(deps: Deps, units: list[str | Parallel]) -> None:
    steps, before = order_of(units)
    assert sorted(steps) == sorted(deps), f"steps missing or repeated in {units}"
    late = [(dep, step) for step in deps for dep in deps[step] if (dep, step) not in before]
    assert not late, f"{late} may run before their needs in {units}"


# -- shapes ---------------------------------------------------------------------------------------


def test_single_step_is_itself():
    assert lay({"a": []}) == ["a"]


def test_chain_is_a_plain_sequence():
    assert lay({"a": [], "b": ["a"], "c": ["b"], "d": ["c"]}) == ["a", "b", "c", "d"]


def test_fan_out_fan_in_puts_the_middle_in_parallel():
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]}
    assert lay(deps) == ["a", Parallel((("b",), ("c",))), "d"]


def test_fan_out_without_fan_in_ends_in_parallel():
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["c"]}
    assert lay(deps) == ["a", Parallel((("b",), ("c", "d")))]


def test_two_independent_chains_joining_run_side_by_side_then_join():
    deps = {"a": [], "b": ["a"], "c": [], "d": ["c"], "e": ["b", "d"]}
    assert lay(deps) == [Parallel((("a", "b"), ("c", "d"))), "e"]


def test_steps_without_needs_all_run_in_one_parallel():
    deps: Deps = {"a": [], "b": [], "c": [], "d": []}
    assert lay(deps) == [Parallel((("a",), ("b",), ("c",), ("d",)))]


def test_branches_keep_definition_order():
    deps = {"z": [], "y": ["z"], "x": ["z"], "w": ["z"]}
    assert lay(deps) == ["z", Parallel((("y",), ("x",), ("w",)))]


def test_needs_on_a_step_written_later_are_respected():
    deps = {"deploy": ["build"], "build": []}
    assert lay(deps) == ["build", "deploy"]


def test_diamond_inside_a_branch_is_nested():
    deps = {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "x": [], "y": ["x"]}
    assert lay(deps) == [Parallel((("a", Parallel((("b",), ("c",))), "d"), ("x", "y")))]


def test_non_series_parallel_dag_still_respects_every_dependency():
    # The "N": c needs a, d needs a and b. No nesting of sequences and Parallels is exact for it.
    deps = {"a": [], "b": [], "c": ["a"], "d": ["a", "b"]}
    units = lay(deps)
    assert_respects(deps, units)
    assert units == [Parallel((("a", "c"), ("b",))), "d"]


def test_bigger_non_series_parallel_dag_respects_every_dependency():
    deps = {
        "a": [],
        "b": [],
        "c": ["a"],
        "d": ["a", "b"],
        "e": ["b"],
        "f": ["c", "d"],
        "g": ["d", "e"],
        "h": ["f", "g"],
    }
    assert_respects(deps, lay(deps))


def test_step_beside_a_diamond_does_not_delay_the_diamond():
    # a -> (b -> (c | d) -> e | f) -> g: series-parallel, so nothing should wait for what it does not need.
    deps = {"a": [], "b": ["a"], "c": ["b"], "d": ["b"], "e": ["c", "d"], "f": ["a"], "g": ["e", "f"]}
    assert lay(deps) == ["a", Parallel((("b", Parallel((("c",), ("d",))), "e"), ("f",))), "g"]


# -- properties over random graphs ----------------------------------------------------------------


def random_dag(rng: random.Random) -> Deps:
    """Up to 8 steps; needs point to steps earlier in a hidden order; written in another order."""
    size = rng.randint(1, 8)
    names = [f"s{i}" for i in range(size)]
    rng.shuffle(names)  # names[i] may need only names[:i]
    density = rng.random()
    deps = {name: [n for n in names[:i] if rng.random() < density] for i, name in enumerate(names)}
    written = list(deps)
    rng.shuffle(written)
    return {name: deps[name] for name in written}


def random_series_parallel(rng: random.Random, names: list[str]) -> tuple[Deps, list[str], list[str]]:
    """A series-parallel DAG over `names`: (needs, its sources, its sinks)."""
    if len(names) == 1:
        return {names[0]: []}, names, names
    cut = rng.randint(1, len(names) - 1)
    left, left_sources, left_sinks = random_series_parallel(rng, names[:cut])
    right, right_sources, right_sinks = random_series_parallel(rng, names[cut:])
    if rng.random() < 0.5:  # in series: the right part starts when the left part is done
        right = {n: (list(left_sinks) if n in right_sources else d) for n, d in right.items()}
        return {**left, **right}, left_sources, right_sinks
    return {**left, **right}, left_sources + right_sources, left_sinks + right_sinks


def test_random_dags_are_laid_out_with_every_step_once_and_after_its_needs():
    rng = random.Random(20240611)  # noqa: S311 - seeded on purpose: the same graphs every run
    for _ in range(200):
        deps = random_dag(rng)
        assert_respects(deps, lay(deps))


def test_random_series_parallel_dags_are_laid_out_safely():
    rng = random.Random(7)  # noqa: S311 - seeded on purpose: the same graphs every run
    for _ in range(200):
        deps, _, _ = random_series_parallel(rng, [f"s{i}" for i in range(rng.randint(1, 8))])
        assert_respects(deps, lay(deps))


def test_random_series_parallel_dags_are_laid_out_exactly():
    rng = random.Random(7)  # noqa: S311 - seeded on purpose: the same graphs every run
    for _ in range(200):
        deps, _, _ = random_series_parallel(rng, [f"s{i}" for i in range(rng.randint(1, 8))])
        _, before = order_of(lay(deps))
        assert before == closure(deps), f"extra waits {before - closure(deps)} for {deps}"


@pytest.mark.parametrize(
    "deps",
    [
        {"a": [], "b": ["a"], "c": ["b"]},
        {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"]},
        {"a": [], "b": ["a"], "c": [], "d": ["c"], "e": ["b", "d"]},
        {"a": [], "b": [], "c": []},
        {"a": [], "b": ["a"], "c": ["a"], "d": ["b", "c"], "x": [], "y": ["x"]},
    ],
)
def test_simple_series_parallel_shapes_add_no_waits(deps):
    _, before = order_of(lay(deps))
    assert before == closure(deps)


def test_order_helper_sees_parallel_branches_as_unordered():
    # Guards the property tests: a wrong helper would make them pass for nothing.
    steps, before = order_of(["a", Parallel((("b", "c"), ("d",))), "e"])
    assert steps == ["a", "b", "c", "d", "e"]
    assert ("b", "c") in before and ("a", "d") in before and ("d", "e") in before
    assert ("b", "d") not in before and ("d", "b") not in before and ("c", "d") not in before
    with pytest.raises(AssertionError, match="may run before their needs"):
        assert_respects({"a": [], "b": ["a"]}, [Parallel((("a",), ("b",)))])
    with pytest.raises(AssertionError, match="missing or repeated"):
        assert_respects({"a": [], "b": []}, ["a", "a"])
