"""build_app: refuses a missing folder or an invalid definition before building anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from flowdeck.errors import InvalidDefinition
from stacks.app_builder import build_app


def test_missing_workflows_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="workflows folder not found"):
        build_app(tmp_path / "nope")


def test_invalid_definition_names_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("name: bad\nsteps:\n  - {id: a}\n")

    with pytest.raises(InvalidDefinition) as raised:
        build_app(tmp_path)

    assert any(problem.startswith(f"{tmp_path / 'bad.yaml'}:3:") for problem in raised.value.problems)
