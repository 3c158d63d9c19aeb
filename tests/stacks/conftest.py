"""Stack tests: synthesize the whole app once per session from two fixture workflows."""

from __future__ import annotations

import os

# jsii starts its Node process on the first aws_cdk import; without these its Node 20 banners
# flood the test output (Node 20 is what this environment has; the templates do not depend on it).
os.environ.setdefault("JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION", "20")
os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")

from typing import cast

import aws_cdk as cdk
import pytest
from aws_cdk import assertions
from stack_helpers import FIXTURE_WORKFLOWS, STACK_NAMES, Synthesized

from stacks.app_builder import API_STACK, COMPUTE_STACK, DATA_STACK, WORKFLOWS_STACK, build_app


@pytest.fixture(scope="session")
def synthesized(tmp_path_factory: pytest.TempPathFactory) -> Synthesized:
    outdir = tmp_path_factory.mktemp("cdk.out")
    # No bundling: the dependencies layer would need pip and the registry (checked by `make synth`).
    app = build_app(FIXTURE_WORKFLOWS, cdk.App(outdir=str(outdir), context={"aws:cdk:bundling-stacks": []}))
    stacks = {name: cast(cdk.Stack, app.node.find_child(name)) for name in STACK_NAMES}
    assembly = app.synth()
    return Synthesized(app=app, stacks=stacks, assembly=assembly)


@pytest.fixture(scope="session")
def templates(synthesized: Synthesized) -> dict[str, assertions.Template]:
    return {name: assertions.Template.from_stack(stack) for name, stack in synthesized.stacks.items()}


@pytest.fixture(scope="session")
def data_template(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[DATA_STACK]


@pytest.fixture(scope="session")
def compute_template(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[COMPUTE_STACK]


@pytest.fixture(scope="session")
def workflows_template(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[WORKFLOWS_STACK]


@pytest.fixture(scope="session")
def api_template(templates: dict[str, assertions.Template]) -> assertions.Template:
    return templates[API_STACK]
