"""The logs table: a run's output as batches of lines, one item per batch, in commit order.

Item: `run_id` (S, pk), `seq` (N, sk), `step` (S), `attempt` (N), `lines` (B: a JSON list of
`{t: epoch seconds with ms, stream: stdout|stderr, text[, cont: true on the continuation parts of a
split line]}`, compact UTF-8, zlib-compressed) and `expires_at` (N, the table's TTL). The layouts
written before are still read: the same JSON uncompressed (S) and a list of typed maps (L of M).
A batch stays under ~30 KB of JSON, so one WebSocket frame (32 KB, SPEC §4) carries it whole; stored
compressed it is ~5-30x smaller, so a Query page (1 MB) holds that many more lines: a search over a
200,000-line step reads one or two pages instead of ~20 (and a write costs that many fewer WCUs).

`seq` is per run and strictly increasing in commit order, also with parallel steps on several workers:
a writer puts `seq = last + 1` with the condition `attribute_not_exists(seq)`. `last` is a seq this
store wrote or read (cached per run); on a conflict it reads the current maximum (consistent Query,
newest first, Limit 1) and tries again. A put at N+1 therefore only ever succeeds once N exists, so
"seq N+1 exists => seq N exists": a reader that saw N can replay from N without gaps (the live view
relies on it). Items are never updated or deleted by us; TTL removes a run's batches after retention.
"""

from __future__ import annotations

import base64
import json
import threading
import zlib
from collections.abc import Iterator
from decimal import Decimal
from json.encoder import encode_basestring_ascii
from typing import Any, Literal

from flowdeck import aws
from flowdeck.constants import TTL_ATTRIBUTE
from flowdeck.stores.conditions import conditional

Stream = Literal["stdout", "stderr", "all"]
# Query pages grow: the first asks for FIRST_QUERY_PAGE batches, each next one PAGE_GROWTH times more,
# up to QUERY_PAGE (DynamoDB also stops a page at 1 MB). A reader that stops early (a viewer's first
# 500 lines are 1-2 full batches) reads and pays for little more than it uses; a whole read of a
# 200,000-line step (730 compressed batches) takes 5 pages.
FIRST_QUERY_PAGE = 8
PAGE_GROWTH = 4
QUERY_PAGE = 500
# JSON around one line's text: {"t": 1763750000.123, "stream": "stdout", "text": }, (and "cont": true).
LINE_OVERHEAD = 56
CONT_OVERHEAD = 14
# Conflicts only happen while several writers append to one run at once; each retry reads the max.
MAX_SEQ_ATTEMPTS = 50
# Last seqs kept per store (a long-lived worker sees many runs); a run dropped from it costs one Query.
MAX_CACHED_RUNS = 1024
# How a line's JSON starts and follows another, as encode_lines writes the LogWriter's lines.
LINE_START = '{"t":'
NEXT_LINE = ',{"t":'
# A search parses the lines holding its needle one by one when there are at most this many in a batch
# (of ~300 lines); with more a whole parse is cheaper (one parse per line costs ~4x its share of one).
MAX_PICKED_LINES = 32


def json_len(text: str) -> int:
    """Bytes `text` takes as a JSON string (ASCII-escaped: the largest encoding)."""
    return len(encode_basestring_ascii(text))


def encode_lines(lines: list[dict[str, Any]]) -> bytes:
    """A batch's lines as the `lines` attribute stores them: compact JSON, zlib-compressed."""
    return zlib.compress(json.dumps(lines, separators=(",", ":"), ensure_ascii=False).encode())


def _inflate(data: bytes | str) -> str:
    """A binary `lines` value's JSON text (boto3 hands bytes; a Lambda stream event, base64 text)."""
    return zlib.decompress(base64.b64decode(data) if isinstance(data, str) else data).decode()


def decode_lines(value: dict[str, Any]) -> list[dict[str, Any]]:
    """The `lines` attribute value, in any layout the table has held, as plain lines."""
    if "B" in value:
        lines: list[dict[str, Any]] = json.loads(_inflate(value["B"]))
        return lines
    if "S" in value:
        old: list[dict[str, Any]] = json.loads(value["S"])
        return old
    return [line_from_ddb(v) for v in value["L"]]


def matching_lines(value: dict[str, Any], needle: str) -> list[dict[str, Any]]:
    """The lines of a `lines` attribute value whose text contains `needle` (casefolded)."""
    if "B" in value:
        text = _inflate(value["B"])
        picked = _pick_matches(text, needle)
        lines: list[dict[str, Any]] = json.loads(text) if picked is None else picked
    else:
        lines = decode_lines(value)
    return [line for line in lines if needle in line["text"].casefold()]


def _pick_matches(text: str, needle: str) -> list[dict[str, Any]] | None:
    """The lines of a batch's JSON text where `needle` occurs, each parsed alone; None: parse it whole."""
    # Most of a large log never matches: finding the needle in the text and parsing only the lines it
    # occurs in is several times cheaper than parsing every line. The caller checks each line picked.
    # Only in ASCII text are the folded text's offsets the text's own (casefold is lower there).
    if not text.isascii():
        return None
    # The needle as it reads inside a JSON string: quotes, backslashes and control characters escaped.
    target = json.dumps(needle, ensure_ascii=False)[1:-1]
    folded = text.lower()
    if folded.count(target) > MAX_PICKED_LINES:
        return None
    picked: list[dict[str, Any]] = []
    start = -1
    at = folded.find(target)
    while at != -1:
        # Where the line holding `at` starts: `{"t":` never occurs inside a string (its quote would
        # be escaped), so it only marks the start of a line in the writer's key order.
        line_start = text.rfind(LINE_START, 0, at + len(LINE_START))
        if line_start == -1 or len(picked) == MAX_PICKED_LINES:
            return None
        if line_start != start:
            start = line_start
            end = text.find(NEXT_LINE, at)
            try:
                # Another key order spans two lines here and fails to parse: then the whole parse decides.
                picked.append(json.loads(text[start : end if end != -1 else len(text) - 1]))
            except ValueError:
                return None
        at = folded.find(target, at + 1)
    return picked


def line_from_ddb(value: dict[str, Any]) -> dict[str, Any]:
    m = value["M"]
    line: dict[str, Any] = {"t": float(m["t"]["N"]), "stream": m["stream"]["S"], "text": m["text"]["S"]}
    if m.get("cont", {}).get("BOOL"):
        line["cont"] = True
    return line


def batch_from_item(item: dict[str, Any], needle: str | None = None) -> dict[str, Any]:
    """A logs table item (DynamoDB JSON, as Query or a stream NEW_IMAGE has it) as a plain batch."""
    # With a (casefolded) needle the batch holds only the lines whose text contains it.
    value = item["lines"]
    batch: dict[str, Any] = {
        "seq": int(Decimal(item["seq"]["N"])),
        "step": item["step"]["S"],
        "lines": decode_lines(value) if needle is None else matching_lines(value, needle),
    }
    if "attempt" in item:
        batch["attempt"] = int(item["attempt"]["N"])
    return batch


class LogStore:
    """Appends batches of lines to the logs table and reads them back, whole or filtered."""

    def __init__(self, table: str, client: Any = None) -> None:
        self.table = table
        self.client = client or aws.client("dynamodb")
        self.page_size = QUERY_PAGE
        self._last: dict[str, int] = {}
        self._lock = threading.Lock()

    # -- writes -------------------------------------------------------------------------------
    def last_seq(self, run_id: str) -> int:
        """The highest committed seq of the run (0 when none), read consistently."""
        response = self.client.query(
            TableName=self.table,
            KeyConditionExpression="run_id = :r",
            ExpressionAttributeValues={":r": {"S": run_id}},
            ProjectionExpression="seq",
            ScanIndexForward=False,
            Limit=1,
            ConsistentRead=True,
        )
        items = response.get("Items", [])
        return int(items[0]["seq"]["N"]) if items else 0

    def append(
        self, run_id: str, step: str, attempt: int, lines: list[dict[str, Any]], expires_at: int
    ) -> int:
        """Store one batch as the run's next seq; returns that seq."""
        with self._lock:
            last = self._last.get(run_id)
        if last is None:
            last = self.last_seq(run_id)
        item = {
            "run_id": {"S": run_id},
            "step": {"S": step},
            "attempt": {"N": str(attempt)},
            # Compressed JSON, not a list of typed maps: a fraction of the bytes to write, read, parse
            # and stream (the emulator spent ~30 ms per batch on the typed form; a Query page is 1 MB).
            "lines": {"B": encode_lines(lines)},
            TTL_ATTRIBUTE: {"N": str(int(expires_at))},
        }
        for _ in range(MAX_SEQ_ATTEMPTS):
            seq = last + 1
            with conditional() as write:
                self.client.put_item(
                    TableName=self.table,
                    Item=item | {"seq": {"N": str(seq)}},
                    ConditionExpression="attribute_not_exists(seq)",
                )
            if not write.held:
                # Another writer took it: start over from the run's real maximum.
                last = max(self.last_seq(run_id), seq)
                continue
            with self._lock:
                self._last[run_id] = max(self._last.pop(run_id, 0), seq)  # most recent last
                if len(self._last) > MAX_CACHED_RUNS:
                    del self._last[next(iter(self._last))]
            return seq
        raise RuntimeError(f"no free seq for run {run_id} after {MAX_SEQ_ATTEMPTS} attempts")

    # -- reads --------------------------------------------------------------------------------
    def _items(
        self, run_id: str, since_seq: int, step: str | None = None, page: int | None = None
    ) -> Iterator[dict[str, Any]]:
        """Every item of the run after `since_seq`, in seq order, in growing pages (consistent reads)."""
        kwargs: dict[str, Any] = {
            "TableName": self.table,
            "KeyConditionExpression": "run_id = :r AND seq > :s",
            "ExpressionAttributeValues": {":r": {"S": run_id}, ":s": {"N": str(since_seq)}},
            "ConsistentRead": True,
            "Limit": min(page or FIRST_QUERY_PAGE, self.page_size),
        }
        if step is not None:
            kwargs["FilterExpression"] = "#step = :step"
            kwargs["ExpressionAttributeNames"] = {"#step": "step"}
            kwargs["ExpressionAttributeValues"][":step"] = {"S": step}
        while True:
            response = self.client.query(**kwargs)
            yield from response.get("Items", [])
            if "LastEvaluatedKey" not in response:
                return
            kwargs["ExclusiveStartKey"] = response["LastEvaluatedKey"]
            kwargs["Limit"] = min(kwargs["Limit"] * PAGE_GROWTH, self.page_size)

    def iter_batches(
        self, run_id: str, since_seq: int = 0, step: str | None = None, q: str | None = None
    ) -> Iterator[dict[str, Any]]:
        """Batches `{seq, step, attempt, lines}` after since_seq in order (of `step`; lines holding `q`)."""
        needle = q.casefold() if q else None
        return (batch_from_item(item, needle) for item in self._items(run_id, since_seq, step))

    def batches_after(self, run_id: str, since_seq: int, limit: int | None = None) -> list[dict[str, Any]]:
        """Batches `{seq, step, attempt, lines}` with seq > since_seq, in seq order (at most `limit`)."""
        batches: list[dict[str, Any]] = []
        for item in self._items(run_id, since_seq, page=limit):
            batches.append(batch_from_item(item))
            if limit is not None and len(batches) >= limit:
                break
        return batches

    def search(
        self,
        run_id: str,
        step: str | None = None,
        stream: Stream = "all",
        q: str | None = None,
        since_seq: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Lines `{seq, step, t, stream, text[, cont]}` of the whole stored log, filtered (`q`: any case)."""
        for batch in self.iter_batches(run_id, since_seq, step, q):
            for line in batch["lines"]:
                if stream == "all" or line["stream"] == stream:
                    yield {"seq": batch["seq"], "step": batch["step"], **line}
