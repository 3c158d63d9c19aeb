"""FLOWDECK_USAGE lines: parsing, tailing as they are written, malformed lines reported and skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner.usage import UsageTailer, compute_usage, parse_usage_line


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
