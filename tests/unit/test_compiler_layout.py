"""The compiler stays one small fragment builder per step kind: no function grows past 50 lines."""

from __future__ import annotations

import ast
from pathlib import Path

import statemachines

MAX_FUNCTION_LINES = 50


def test_no_compiler_function_is_over_fifty_lines():
    package = Path(statemachines.__file__).parent
    too_long = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                lines = (node.end_lineno or node.lineno) - node.lineno + 1
                if lines > MAX_FUNCTION_LINES:
                    too_long.append(f"{path.name}:{node.lineno} {node.name} ({lines} lines)")
    assert too_long == []
