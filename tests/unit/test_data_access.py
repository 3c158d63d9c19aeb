"""Every DynamoDB and Step Functions call of the core lives in flowdeck/stores (the emulator glue aside)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("flowdeck", "lambdas", "stacks", "statemachines")
# flowdeck/local hosts the emulator and the local stack: its glue talks to moto directly.
ALLOWED = ("flowdeck/stores/", "flowdeck/local/")
DYNAMODB = {
    "batch_get_item",
    "batch_write_item",
    "delete_item",
    "execute_statement",
    "get_item",
    "put_item",
    "query",
    "scan",
    "transact_get_items",
    "transact_write_items",
    "update_item",
}
STEP_FUNCTIONS = {
    "describe_execution",
    "get_execution_history",
    "list_executions",
    "redrive_execution",
    "send_task_failure",
    "send_task_heartbeat",
    "send_task_success",
    "start_execution",
    "start_sync_execution",
    "stop_execution",
}


def data_calls(path: Path) -> list[str]:
    """`line: .operation(` for each call of a DynamoDB or Step Functions operation on some object."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        if node.func.attr in DYNAMODB | STEP_FUNCTIONS:
            found.append(f"{node.lineno}: .{node.func.attr}(")
    return found


def core_files() -> list[str]:
    files = sorted(str(p.relative_to(ROOT)) for top in SCANNED for p in (ROOT / top).rglob("*.py"))
    return [f for f in files if not f.startswith(ALLOWED)]


def test_no_module_outside_stores_calls_dynamodb_or_step_functions() -> None:
    offenders = {name: calls for name in core_files() if (calls := data_calls(ROOT / name))}
    assert offenders == {}, "move these calls into a store adapter in flowdeck/stores/"


def test_the_scan_sees_a_call_on_a_borrowed_client(tmp_path: Path) -> None:
    module = tmp_path / "borrowed.py"
    module.write_text("def f(runs, sfn):\n    runs.client.update_item(Key={})\n    sfn.send_task_success()\n")
    assert data_calls(module) == ["2: .update_item(", "3: .send_task_success("]
