"""The Lambda asset is sound: every handler imports from the bundled asset alone, as Lambda runs it.

The handler zip (staged by the session's synth), the dependencies layer (bundled here once with the
same pip command `python app.py` runs), the Powertools layer and the runtime's SDK are the only
entries on an isolated interpreter's path, in Lambda's order: /var/task, then the layers, then the
runtime's site-packages (AWS: "Working with .zip file archives for Python Lambda functions",
"Dependency search path and runtime-included libraries"). Bundling needs pip and the registry
(~10-35 s here); it shares the stacks group's worker with the synth.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterable
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from stack_helpers import Synthesized

from stacks.bundling import DEPENDENCIES_DIR, PipLocalBundling

# What the python3.11 runtime provides in /var/lang/lib/python3.11/site-packages. AWS publishes no
# list (the version "depends on the runtime version and your AWS Region"; the Lambda Python guide's
# "Runtime-included SDK versions" gives only a handler that prints it), so the stand-in is the SDK
# pyproject.toml pins (boto3==1.44.5 and what it resolved to); a deployed function printing other
# versions is the figure to pin here instead.
RUNTIME_SDK = {
    "boto3": "1.44.5",
    "botocore": "1.44.18",
    "s3transfer": "0.19.3",
    "jmespath": "1.1.0",
    "python-dateutil": "2.9.0.post0",
    "six": "1.17.0",
    "urllib3": "2.8.0",
}
# The AWS-managed Powertools layer (stacks.api.powertools_layer_arn) ships the version pyproject.toml pins.
POWERTOOLS = {"aws-lambda-powertools": "3.37.0"}
# The environment Lambda's python3.11 x86_64 runtime evaluates requirement markers in.
LAMBDA_MARKERS = {"python_version": "3.11", "python_full_version": "3.11.0", "sys_platform": "linux"}


def _link_distributions(versions: dict[str, str], into: Path) -> Path:
    """A folder holding only these distributions of this interpreter (links to its site-packages)."""
    into.mkdir(parents=True)
    for name, version in versions.items():
        dist = metadata.distribution(name)
        assert dist.version == version, f"the tests' {name} is {dist.version}, the pin {version}"
        tops = {Path(str(f)).parts[0] for f in dist.files or [] if not str(f).startswith("..")}
        for top in tops - {"__pycache__"}:
            (into / top).symlink_to(Path(str(dist.locate_file(top))))
    return into


@pytest.fixture(scope="session")
def lambda_path(synthesized: Synthesized, tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """sys.path of a deployed handler: code zip, dependencies layer, Powertools layer, runtime SDK."""
    assembly = Path(synthesized.assembly.directory)
    files = json.loads((assembly / "FlowdeckApi.assets.json").read_text())["files"]
    (code,) = [
        assembly / f["source"]["path"]
        for f in files.values()
        if f["source"].get("packaging") == "zip" and f["source"]["path"] != str(DEPENDENCIES_DIR)
    ]
    layer = tmp_path_factory.mktemp("dependencies-layer")
    PipLocalBundling().try_bundle(str(layer), None)
    root = tmp_path_factory.mktemp("lambda-runtime")
    powertools = _link_distributions(POWERTOOLS, root / "powertools-layer" / "python")
    runtime = _link_distributions(RUNTIME_SDK, root / "var-lang-site-packages")
    return [code, layer / "python", powertools, runtime]


def _handler_modules(synthesized: Synthesized) -> set[str]:
    """The module of every Flowdeck function in the app (CDK's own helper functions excluded)."""
    modules = set()
    for template in Path(synthesized.assembly.directory).glob("*.template.json"):
        for resource in json.loads(template.read_text()).get("Resources", {}).values():
            handler = resource.get("Properties", {}).get("Handler", "")
            if resource["Type"] == "AWS::Lambda::Function" and handler.startswith("lambdas."):
                modules.add(handler)
    return modules


def _unmet_requirements(path: Iterable[Path]) -> list[str]:
    """Requirements of the distributions on `path` that no distribution on `path` satisfies."""
    dists: dict[str, metadata.Distribution] = {}
    for candidate in metadata.distributions(path=[str(p) for p in path]):
        # The first on the path is the one Python imports.
        dists.setdefault(canonicalize_name(candidate.metadata["Name"]), candidate)
    unmet = []
    for name, dist in sorted(dists.items()):
        for line in dist.requires or []:
            requirement = Requirement(line)
            if requirement.marker and not requirement.marker.evaluate(LAMBDA_MARKERS | {"extra": ""}):
                continue
            found = dists.get(canonicalize_name(requirement.name))
            if found is None or found.version not in requirement.specifier:
                have = found.version if found else "nothing"
                unmet.append(f"{name} {dist.version} needs {requirement}, the asset has {have}")
    return unmet


def test_every_handler_imports_from_the_asset_alone(
    synthesized: Synthesized, lambda_path: list[Path]
) -> None:
    handlers = _handler_modules(synthesized)
    # -I -S: no site-packages, PYTHONPATH or user site, only the Lambda path below; -B: the staged
    # asset stays as synth staged it (read-only /var/task on Lambda).
    script = (
        "import importlib, sys\n"
        f"sys.path[:0] = {[str(p) for p in lambda_path]!r}\n"
        f"for handler in {sorted(handlers)!r}:\n"
        "    module, name = handler.rsplit('.', 1)\n"
        "    assert callable(getattr(importlib.import_module(module), name)), handler\n"
        # The API loads the shipped definitions on its first request (pyawscron, PyYAML, pydantic).
        "from pathlib import Path\n"
        "from flowdeck.catalog import Catalog\n"
        f"assert Catalog.from_dir(Path({str(lambda_path[0] / 'workflows')!r})).definitions\n"
        "import boto3, dateutil\n"
        "print(boto3.__file__, dateutil.__file__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-S", "-B", "-c", script],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert handlers >= {"lambdas.api.lambda_handler", "lambdas.notifier.lambda_handler"}
    # The SDK and its date parser are the runtime's, not a copy in a layer.
    assert all(str(lambda_path[-1]) in found for found in done.stdout.split()), done.stdout


def test_the_asset_meets_every_requirement_of_what_it_ships(lambda_path: list[Path]) -> None:
    assert _unmet_requirements(lambda_path) == []


def test_the_dependencies_layer_shadows_nothing_the_runtime_provides(lambda_path: list[Path]) -> None:
    shipped = {
        canonicalize_name(d.metadata["Name"]) for d in metadata.distributions(path=[str(lambda_path[1])])
    }

    assert shipped & {canonicalize_name(name) for name in RUNTIME_SDK} == set()
    assert shipped == {
        canonicalize_name(line.split("==")[0])
        for line in (DEPENDENCIES_DIR / "requirements.txt").read_text().splitlines()
        if "==" in line
    }
