"""Live view frames (SPEC §4): run, step, log and error messages as the bytes a WebSocket sends.

Log frames keep the log store's seq; a batch whose frame would exceed the 32 KB API Gateway limit is
split into several frames with the same seq and `part`/`parts` fields (1-based). Run and step status
frames carry no seq: they are state, and the snapshot sent on subscribe covers what was missed.
"""

from __future__ import annotations

import json
from typing import Any

from flowdeck.constants import RUN_SK, STEP_SK_PREFIX
from flowdeck.costs.models import money_text

# API Gateway's WebSocket frame limit is 32 KB; keep a margin for the JSON envelope's rounding.
MAX_FRAME_BYTES = 32 * 1024 - 512
# A single line longer than this is cut in the live view (the log store keeps it whole).
MAX_LINE_TEXT = 16 * 1024
MAX_ERROR_TEXT = 4 * 1024


def dump(message: dict[str, Any]) -> bytes:
    return json.dumps(message, separators=(",", ":"), ensure_ascii=False, default=str).encode("utf-8")


def _cut(text: Any, limit: int) -> Any:
    return text[:limit] + "…" if isinstance(text, str) and len(text) > limit else text


def log_frames(run_id: str, batch: dict[str, Any]) -> list[bytes]:
    """One log batch as frames under MAX_FRAME_BYTES: one frame, or parts sharing the batch's seq."""
    base = {"type": "log", "run_id": run_id, "step": batch["step"], "seq": int(batch["seq"])}
    lines = []
    for line in batch["lines"]:
        text = line.get("text", "")
        cut = _cut(text, MAX_LINE_TEXT)
        lines.append({**line, "text": cut, "truncated": True} if cut is not text else line)
    whole = dump(base | {"lines": lines})
    if len(whole) <= MAX_FRAME_BYTES:
        return [whole]
    overhead = len(dump(base | {"lines": [], "part": 99999, "parts": 99999}))
    groups: list[list[dict[str, Any]]] = [[]]
    size = overhead
    for line in lines:
        line_size = len(dump(line)) + 1
        if groups[-1] and size + line_size > MAX_FRAME_BYTES:
            groups.append([])
            size = overhead
        groups[-1].append(line)
        size += line_size
    return [
        dump(base | {"lines": group, "part": index, "parts": len(groups)})
        for index, group in enumerate(groups, start=1)
    ]


def run_message(run_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """`{"type": "run"}` from a run item or a run view."""
    return {
        "type": "run",
        "run_id": run_id,
        "workflow": item.get("workflow"),
        "status": item.get("status"),
        "started_at": item.get("started_at"),
        "ended_at": item.get("ended_at"),
        "error": _cut(item.get("error"), MAX_ERROR_TEXT),
        # A decimal string, as in every answer (flowdeck.costs.models.Money).
        "cost_usd": money_text(item.get("cost_usd")) or "0",
        # A cancel under way (the run keeps its status until its last process ended): viewers say so.
        **(
            {"cancel_requested_at": item["cancel_requested_at"], "cancel_mode": item.get("cancel_mode")}
            if item.get("cancel_requested_at")
            else {}
        ),
    }


def step_message(run_id: str, step_id: str, item: dict[str, Any]) -> dict[str, Any]:
    """`{"type": "step"}` from a step item or a step view."""
    return {
        "type": "step",
        "run_id": run_id,
        "step": step_id,
        "status": item.get("status", "pending"),
        "attempt": item.get("attempt", 0),
        "started_at": item.get("started_at"),
        "ended_at": item.get("ended_at"),
        "error": _cut(item.get("error"), MAX_ERROR_TEXT),
        "summary": _cut(item.get("summary"), MAX_ERROR_TEXT),
        "cost_usd": money_text(item.get("cost_usd")),
        # A step the ended run never reached: why (flowdeck.runs.unrun).
        **({"not_run": item["not_run"]} if item.get("not_run") else {}),
        # Paused on failure: since when and until when it waits (never its token).
        **(
            {
                "waiting_since": item.get("waiting_since"),
                "wait_deadline": item.get("wait_deadline"),
                "allow_skip": bool(item.get("allow_skip")),
            }
            if item.get("status") == "waiting"
            else {}
        ),
        # An approval step: who may decide, how many so far, until when (flowdeck.approvals).
        **approval_message(item),
    }


def approval_message(item: dict[str, Any]) -> dict[str, Any]:
    """The approval's state for viewers (a step item's `approval` map, or a step view's)."""
    approval = item.get("approval")
    if not isinstance(approval, dict):
        return {}
    keep = ("message", "approvers", "min_approvals", "approvals", "deadline", "approved_by", "rejected_by")
    return {"approval": {k: approval[k] for k in keep if k in approval}}


def status_message(keys: dict[str, Any], image: dict[str, Any] | None) -> dict[str, Any] | None:
    """A runs-table item (plain values) as a run or step message; None for other items."""
    if not image:
        return None
    run_id, sort_key = str(keys.get("pk", "")), str(keys.get("sk", ""))
    if sort_key == RUN_SK:
        return run_message(run_id, image)
    if sort_key.startswith(STEP_SK_PREFIX):
        return step_message(run_id, sort_key.removeprefix(STEP_SK_PREFIX), image)
    return None


def snapshot_messages(run: dict[str, Any]) -> list[dict[str, Any]]:
    """The run view (RunService.get_run) as one run message and one step message per step."""
    run_id = run["run_id"]
    return [run_message(run_id, run)] + [step_message(run_id, s["id"], s) for s in run.get("steps", [])]


def error_frame(code: str, message: str) -> bytes:
    return dump({"type": "error", "error": code, "message": message})
