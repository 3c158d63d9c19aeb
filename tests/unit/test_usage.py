"""FLOWDECK_USAGE lines: parsing, tailing as they are written, malformed lines reported and skipped."""

from __future__ import annotations

import threading
from decimal import Decimal
from pathlib import Path

import pytest

from flowdeck.costs.calculator import load_calculator
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.usage import UsageRecorder, UsageTailer, compute_usage, parse_usage_line


class Lines:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __call__(self, stream: str, text: str) -> None:
        self.lines.append((stream, text))


def test_a_usage_line_is_parsed() -> None:
    usage = parse_usage_line('{"model": "gpt-4o", "input_tokens": 5, "output_tokens": 7, "extra": 1}')

    assert (usage.model, usage.input_tokens, usage.output_tokens) == ("gpt-4o", 5, 7)


@pytest.mark.parametrize(
    ("line", "why"),
    [
        ("not json", "not JSON"),
        ("[1, 2]", "not a JSON object"),
        ('{"input_tokens": 1}', "model"),
        ('{"model": "", "input_tokens": 1}', "model"),
        ('{"model": "m", "input_tokens": -1}', "input_tokens"),
        ('{"model": "m", "output_tokens": 1.5}', "output_tokens"),
        ('{"model": "m", "output_tokens": true}', "output_tokens"),
        ('{"model": "m", "input_tokens": "12"}', "input_tokens"),
    ],
)
def test_a_malformed_usage_line_says_why(line: str, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        parse_usage_line(line)


def test_tailer_sums_per_model_and_reports_malformed_lines(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    sink = Lines()
    tailer = UsageTailer(path, sink)
    assert tailer.read() is False  # no file yet: nothing, no complaint

    path.write_text(
        '{"model": "a", "input_tokens": 10, "output_tokens": 1}\n'
        "garbage\n"
        '{"model": "b", "input_tokens": 5}\n'
        '{"model": "a", "input_tokens": 2, "output_tokens": 3}\n'
        '{"model": "a", "input_tok'  # still being written
    )
    assert tailer.read() is True
    assert {m.model: (m.input_tokens, m.output_tokens) for m in tailer.models.values()} == {
        "a": (12, 4),
        "b": (5, 0),
    }
    assert sink.lines == [("stderr", "flowdeck: usage line 2 skipped: not JSON")]

    with path.open("a") as handle:
        handle.write('ens": 100}\n')
    assert tailer.read() is True
    assert tailer.models["a"].input_tokens == 112
    assert tailer.read() is False


def test_the_final_read_takes_a_last_line_without_newline(tmp_path: Path) -> None:
    path = tmp_path / "usage.jsonl"
    path.write_text('{"model": "a", "input_tokens": 1}')
    tailer = UsageTailer(path, Lines())

    assert tailer.read() is False
    assert tailer.read(final=True) is True
    assert tailer.models["a"].input_tokens == 1


def test_compute_usage_takes_the_resource_class_from_fargate_units() -> None:
    message = StepMessage(
        token="t", run_id="r", workflow="w", step="s", spec=StepSpec(resources={"cpu": 1024, "memory": 2048})
    )

    usage = compute_usage(message, 12.5)

    assert (usage.seconds, usage.vcpu, usage.memory_gb, usage.mode) == (12.5, 1.0, 2.0, "pool")
    assert usage.resource_class == "1 vCPU / 2 GB (pool)"


class RecordingRuns:
    """The run store's usage ADD, recorded; the run's new total is what was added so far."""

    def __init__(self) -> None:
        self.added: list[tuple[Decimal, dict[str, tuple[int, int]]]] = []

    def add_run_usage(self, run_id: str, cost: Decimal, tokens: dict[str, tuple[int, int]]) -> Decimal:
        self.added.append((cost, tokens))
        return sum((c for c, _ in self.added), Decimal(0))


class RecordingBudget:
    def __init__(self) -> None:
        self.totals: list[Decimal] = []

    def after_usage(self, message: StepMessage, total: Decimal, stop: threading.Event) -> None:
        self.totals.append(total)

    def exceeded(self, message: StepMessage) -> str | None:
        return None


def recorder(tmp_path: Path) -> tuple[UsageRecorder, RecordingRuns, RecordingBudget]:
    runs, budget = RecordingRuns(), RecordingBudget()
    message = StepMessage(token="t", run_id="r", workflow="w", step="s", spec=StepSpec())
    usage = UsageRecorder(
        message,
        tmp_path / "usage.jsonl",
        Lines(),
        runs,
        load_calculator(),
        "us-east-1",
        budget,
        threading.Event(),
    )
    return usage, runs, budget


def test_a_delta_of_nothing_is_not_written_to_the_run(tmp_path: Path) -> None:
    # A step of a few milliseconds costs less than the millionth of a dollar costs are kept to.
    usage, runs, budget = recorder(tmp_path)
    step_usage = usage.usage(0.003)

    usage.add_to_run(step_usage, Decimal("0.000000"))

    assert runs.added == [] and budget.totals == []


def test_a_delta_is_added_once_and_only_what_changed_since(tmp_path: Path) -> None:
    usage, runs, budget = recorder(tmp_path)
    step_usage = usage.usage(60)

    usage.add_to_run(step_usage, Decimal("0.000400"))
    usage.add_to_run(step_usage, Decimal("0.000400"))  # nothing new since the last flush
    usage.add_to_run(step_usage, Decimal("0.000500"))

    assert [cost for cost, _ in runs.added] == [Decimal("0.000400"), Decimal("0.000100")]
    assert budget.totals == [Decimal("0.000400"), Decimal("0.000500")]
