"""Assets: synth stages only allow-listed code (no .venv, cdk.out or tests), and never builds images."""

from __future__ import annotations

import json
from importlib import metadata
from pathlib import Path

from stack_helpers import Synthesized

from stacks.app_builder import API_STACK, COMPUTE_STACK
from stacks.bundling import DEPENDENCIES_DIR


def _asset_manifest(synthesized: Synthesized, stack_name: str) -> dict:
    return json.loads((Path(synthesized.assembly.directory) / f"{stack_name}.assets.json").read_text())


def _staged_top_level(synthesized: Synthesized, relative: str) -> set[str]:
    return {p.name for p in (Path(synthesized.assembly.directory) / relative).iterdir()}


def _zip_sources(synthesized: Synthesized) -> list[str]:
    files = _asset_manifest(synthesized, API_STACK)["files"]
    return [f["source"]["path"] for f in files.values() if f["source"].get("packaging") == "zip"]


def test_lambda_zip_ships_only_the_handler_packages(synthesized: Synthesized) -> None:
    # The dependencies layer is the other zip; unbundled in tests, its source is used as it is.
    staged = [path for path in _zip_sources(synthesized) if path != str(DEPENDENCIES_DIR)]

    assert len(staged) == 1
    assert _staged_top_level(synthesized, staged[0]) <= {"flowdeck", "lambdas", "statemachines", "workflows"}
    assert "flowdeck" in _staged_top_level(synthesized, staged[0])
    assert not list((Path(synthesized.assembly.directory) / staged[0]).rglob("__pycache__"))


def test_dependencies_layer_is_built_from_the_pinned_requirements_only(synthesized: Synthesized) -> None:
    assert str(DEPENDENCIES_DIR) in _zip_sources(synthesized)
    assert {p.name for p in DEPENDENCIES_DIR.iterdir()} == {"requirements.txt"}
    pins = [line for line in (DEPENDENCIES_DIR / "requirements.txt").read_text().splitlines() if "==" in line]
    # Every package of the layer is pinned (pip installs it with --no-deps), at the tests' version.
    assert {pin.split("==")[0] for pin in pins} == {
        "pydantic",
        "pydantic-core",
        "annotated-types",
        "typing-extensions",
        "typing-inspection",
        "pydantic-settings",
        "python-dotenv",
        "PyYAML",
        "Jinja2",
        "MarkupSafe",
        "simpleeval",
        "pyawscron",
        "slack-sdk",
    }
    assert [pin for pin in pins if metadata.version(pin.split("==")[0]) != pin.split("==")[1]] == []


def test_worker_image_context_is_the_dockerfile_the_runner_packages_and_workflows(
    synthesized: Synthesized,
) -> None:
    images = _asset_manifest(synthesized, COMPUTE_STACK)["dockerImages"]
    (image,) = images.values()

    assert _staged_top_level(synthesized, image["source"]["directory"]) == {
        "Dockerfile",
        "pyproject.toml",
        "flowdeck",
        "statemachines",
        "workflows",
    }
