"""Read a run's stored output: filter by step and stream, search, page, and render for download."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from flowdeck.stores.logs import LINE_OVERHEAD, LogStore, json_len
from flowdeck.stores.run_lookup import load_run
from flowdeck.stores.runs import RunStore

# One answer stays well inside Lambda's 6 MB response payload (API Gateway's own cap is 10 MB);
# `next_since_seq` continues where a capped answer stopped.
MAX_LINES = 50_000
MAX_BYTES = 4_000_000

Format = Literal["json", "jsonl", "text"]


class LogQuery(BaseModel):
    """Query of GET /runs/{id}/logs."""

    model_config = ConfigDict(extra="forbid")
    step: str | None = Field(default=None, min_length=1, max_length=128)
    stream: Literal["all", "stdout", "stderr"] = "all"
    q: str | None = Field(default=None, min_length=1, max_length=1024, description="case-insensitive text")
    since_seq: int = Field(default=0, ge=0, description="only batches after this seq")
    limit: int = Field(
        default=MAX_LINES, ge=1, le=MAX_LINES, description="stop after the batch that reaches this many lines"
    )
    format: Format = "json"


class LogService:
    """Use cases over the logs table, for runs the runs table knows."""

    def __init__(self, logs: LogStore, runs: RunStore) -> None:
        self.logs = logs
        self.runs = runs

    def run_status(self, run_id: str) -> str:
        run, _, _ = load_run(self.runs, run_id)
        return str(run.get("status", "queued"))

    def page(self, run_id: str, query: LogQuery) -> dict[str, Any]:
        """Matching lines after `since_seq`, whole batches at a time, capped at MAX_LINES / MAX_BYTES.

        `next_since_seq` is the last batch read (pass it back to continue or to follow); `more` says
        whether the cap (or `limit`: a viewer's small first page) stopped the answer before the end.
        """
        status = self.run_status(run_id)
        lines: list[dict[str, Any]] = []
        size = 0
        next_seq = query.since_seq
        more = False
        # With `q`, the store hands each batch with only its matching lines (it need not parse the rest).
        for batch in self.logs.iter_batches(run_id, query.since_seq, query.step, query.q):
            if len(lines) >= query.limit or size >= MAX_BYTES:
                more = True
                break
            for line in batch["lines"]:
                if query.stream == "all" or line["stream"] == query.stream:
                    lines.append({"seq": batch["seq"], "step": batch["step"], **line})
                    size += json_len(line["text"]) + LINE_OVERHEAD
            next_seq = batch["seq"]
        return {
            "run_id": run_id,
            "run_status": status,
            "lines": lines,
            "next_since_seq": next_seq,
            "more": more,
        }


def as_jsonl(lines: list[dict[str, Any]]) -> str:
    """One JSON object per line (the `format=jsonl` download)."""
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def as_text(lines: list[dict[str, Any]]) -> str:
    """`[step] text` per line (the `format=text` download); continuation parts join their line."""
    out: list[str] = []
    for line in lines:
        if line.get("cont") and out:
            out[-1] += line["text"]
        else:
            out.append(f"[{line['step']}] {line['text']}")
    return "".join(text + "\n" for text in out)


def download_name(run_id: str, fmt: Format) -> str:
    """A file name safe inside a Content-Disposition header."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
    return f"{safe}-logs.{'txt' if fmt == 'text' else 'jsonl'}"
