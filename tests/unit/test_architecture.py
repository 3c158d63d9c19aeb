"""The import rules of the code base: no import cycle, and the layering `make check` enforces.

The import graph comes from grimp (import-linter's engine), which reads the source statically: every
import counts, also one under `if TYPE_CHECKING:` or inside a function.
"""

from __future__ import annotations

import graphlib
from pathlib import Path

import grimp
import pytest
from importlinter import cli as import_linter

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("flowdeck", "statemachines", "lambdas", "stacks")


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(*PACKAGES, cache_dir=None)


def test_no_import_cycle_between_modules(graph: grimp.ImportGraph) -> None:
    """A module never imports, directly or not, a module that imports it back."""
    edges = {module: graph.find_modules_directly_imported_by(module) for module in graph.modules}
    try:
        graphlib.TopologicalSorter(edges).prepare()
    except graphlib.CycleError as cycle:
        pytest.fail("import cycle: " + " -> ".join(cycle.args[1]))


def test_the_graph_sees_the_whole_code_base(graph: grimp.ImportGraph) -> None:
    """The cycle test above reads every package (an empty graph would pass it)."""
    assert {"flowdeck.runs.service", "statemachines.compiler", "lambdas.api", "stacks.data"} <= graph.modules
    assert "flowdeck.stores.runs" in graph.find_modules_directly_imported_by("flowdeck.runs.service")


def test_import_linter_contracts_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contracts in pyproject.toml ([tool.importlinter]), as `make check` runs them."""
    monkeypatch.chdir(ROOT)
    assert import_linter.lint_imports(no_cache=True) == import_linter.EXIT_STATUS_SUCCESS
