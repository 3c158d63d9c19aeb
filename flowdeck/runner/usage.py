"""Step usage as it happens: tail the FLOWDECK_USAGE file, measure compute, flush to the run record.

The worker that owns a step re-puts its item with `usage` and `cost_usd` every few seconds while
the step runs (only when something changed) and adds the *delta* to the run's totals, so costs
are visible in real time and the budget guard can act on them.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol

from pydantic import ValidationError

from flowdeck.costs.calculator import CostCalculator
from flowdeck.costs.models import ComputeUsage, ModelUsage, StepUsage, add_models
from flowdeck.messages import StepMessage
from flowdeck.runner.process import LineSink

log = logging.getLogger("flowdeck.usage")

READ_EVERY_SECONDS = 1.0
FLUSH_EVERY_SECONDS = 2.0
# Compute grows continuously: without new tokens the record is refreshed this often only.
COMPUTE_FLUSH_EVERY_SECONDS = 10.0
MAX_LINE_BYTES = 64 * 1024
# Fargate units: 1024 cpu units = 1 vCPU, memory in MiB.
DEFAULT_CPU, DEFAULT_MEMORY = 256, 512


class Budget(Protocol):
    """Told the run's total after each usage flush; may set `stop` to end the step."""

    def after_usage(self, message: StepMessage, run_total_usd: Decimal, stop: threading.Event) -> None: ...


class NoBudget:
    """No budget guard: nothing happens."""

    def after_usage(self, message: StepMessage, run_total_usd: Decimal, stop: threading.Event) -> None:
        return None


def parse_usage_line(text: str) -> ModelUsage:
    """One FLOWDECK_USAGE line; ValueError saying why it cannot be used."""
    try:
        raw = json.loads(text)
    except ValueError:
        raise ValueError("not JSON") from None
    if not isinstance(raw, dict):
        raise ValueError("not a JSON object")
    for name in ("input_tokens", "output_tokens"):
        value = raw.get(name, 0)
        # bool is an int in Python; a token count must be a real non-negative integer.
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name} must be a non-negative integer")
    if not isinstance(raw.get("model"), str) or not raw["model"].strip():
        raise ValueError("model must be a non-empty string")
    try:
        return ModelUsage.model_validate(raw | {"model": raw["model"].strip()})
    except ValidationError as exc:
        raise ValueError(exc.errors(include_url=False, include_input=False)[0]["msg"]) from None


class UsageTailer:
    """Reads complete new lines of the usage file; malformed ones are reported to `sink` and skipped."""

    def __init__(self, path: Path, sink: LineSink) -> None:
        self.path = path
        self.sink = sink
        self.offset = 0
        self.line_number = 0
        self.models: dict[str, ModelUsage] = {}

    def read(self, final: bool = False) -> bool:
        """Take in what was appended since the last read; True when the totals changed."""
        try:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                data = handle.read()
        except FileNotFoundError:
            return False
        except OSError as exc:
            self.sink("stderr", f"flowdeck: usage file unreadable: {exc.strerror}")
            return False
        # A line still being written (no newline yet) waits for the next read, unless this is the last.
        end = len(data) if final else data.rfind(b"\n") + 1
        if end <= 0:
            return False
        self.offset += end
        changed = False
        for raw in data[:end].splitlines():
            self.line_number += 1
            if not raw.strip():
                continue
            try:
                if len(raw) > MAX_LINE_BYTES:
                    raise ValueError(f"longer than {MAX_LINE_BYTES} bytes")
                usage = parse_usage_line(raw.decode("utf-8"))
            except (ValueError, UnicodeDecodeError) as exc:
                why = "not UTF-8" if isinstance(exc, UnicodeDecodeError) else str(exc)
                self.sink("stderr", f"flowdeck: usage line {self.line_number} skipped: {why}")
                continue
            self.models = {m.model: m for m in add_models([*self.models.values(), usage])}
            changed = True
        return changed


def compute_usage(message: StepMessage, seconds: float) -> ComputeUsage:
    """Seconds in the step's resource class (from `resources`, Fargate units).

    Pool: the process's seconds. Fresh: the task's, counted from the start of its image pull.
    """
    resources = message.spec.resources
    if message.mode == "fresh" and message.task_started_at is not None:
        seconds = max(seconds, time.time() - message.task_started_at)
    return ComputeUsage(
        seconds=round(seconds, 3),
        vcpu=resources.get("cpu", DEFAULT_CPU) / 1024,
        memory_gb=resources.get("memory", DEFAULT_MEMORY) / 1024,
        mode=message.mode,
    )


def price(usage: StepUsage, calculator: CostCalculator, region: str) -> Decimal:
    """The step's cost with `calculator`, to a millionth of a dollar."""
    total = calculator.compute_cost(usage.compute, region) + sum(
        (calculator.model_cost(m) for m in usage.models), Decimal(0)
    )
    return total.quantize(Decimal("0.000001"))


class UsageRecorder:
    """Owns one step's usage: reads it, prices it, records deltas to the run; one per running step."""

    def __init__(
        self,
        message: StepMessage,
        path: Path,
        sink: LineSink,
        runs: Any,
        calculator: CostCalculator,
        region: str,
        budget: Budget,
        stop: threading.Event,
    ) -> None:
        self.message = message
        self.tailer = UsageTailer(path, sink)
        self.runs = runs
        self.calculator = calculator
        self.region = region
        self.budget = budget
        self.stop = stop
        self.started = time.monotonic()
        self.flushed_cost = Decimal(0)
        self.flushed_tokens: dict[str, tuple[int, int]] = {}
        self.last_flush = self.started
        self.item: dict[str, Any] | None = None
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="usage")

    def usage(self, seconds: float) -> StepUsage:
        return StepUsage(
            compute=compute_usage(self.message, seconds), models=list(self.tailer.models.values())
        )

    def start(self, item: dict[str, Any]) -> None:
        """Begin reading and flushing while the step runs; `item` is the step item as started."""
        self.item = item
        self.started = self.last_flush = time.monotonic()
        self._thread.start()

    def close(self, seconds: float) -> tuple[StepUsage, Decimal]:
        """Stop the loop, read the file a last time; the final usage and cost for the finish record."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        self.tailer.read(final=True)
        usage = self.usage(seconds)
        return usage, price(usage, self.calculator, self.region)

    def _loop(self) -> None:
        tokens_changed = False
        while not self._done.wait(READ_EVERY_SECONDS):
            try:
                tokens_changed = self.tailer.read() or tokens_changed
                since = time.monotonic() - self.last_flush
                if (tokens_changed and since >= FLUSH_EVERY_SECONDS) or since >= COMPUTE_FLUSH_EVERY_SECONDS:
                    self.flush_running()
                    tokens_changed = False
            except Exception:  # a failed flush must never end the step; the final record still lands
                log.exception("usage flush failed for %s/%s", self.message.run_id, self.message.step)

    def flush_running(self) -> None:
        """Re-put the running step's item with its usage so far, and add the delta to the run."""
        now = time.monotonic()
        usage = self.usage(now - self.started)
        cost = price(usage, self.calculator, self.region)
        if self.item is None or self._done.is_set():
            return
        fields = {"usage": usage.model_dump(mode="json"), "cost_usd": format(cost, "f")}
        updated = self.runs.update_running(self.item, fields)
        if updated is None:
            # Taken over meanwhile (recorded lost): this worker no longer owns the step.
            self._done.set()
            return
        self.item = updated
        self.last_flush = now
        self.add_to_run(usage, cost)

    def add_to_run(self, usage: StepUsage, cost: Decimal) -> None:
        """Add what changed since the last flush to the run's totals, then tell the budget guard."""
        tokens = {m.model: (m.input_tokens, m.output_tokens) for m in usage.models}
        delta_tokens = {}
        for model, (input_tokens, output_tokens) in tokens.items():
            seen_in, seen_out = self.flushed_tokens.get(model, (0, 0))
            if (input_tokens, output_tokens) != (seen_in, seen_out):
                delta_tokens[model] = (input_tokens - seen_in, output_tokens - seen_out)
        delta_cost = cost - self.flushed_cost
        if not delta_cost and not delta_tokens:
            return  # nothing to add: the run's totals, and so the budget's verdict, are as they were
        total = self.runs.add_run_usage(self.message.run_id, delta_cost, delta_tokens)
        self.flushed_cost, self.flushed_tokens = cost, tokens
        if total is not None:
            self.budget.after_usage(self.message, total, self.stop)
