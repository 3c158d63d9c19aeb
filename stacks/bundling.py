"""The API handler's dependencies layer, bundled with pip on this machine (Docker as the fallback)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, Final

import aws_cdk as cdk
import jsii
from aws_cdk import aws_lambda as lambda_
from constructs import Construct

DEPENDENCIES_DIR: Final = Path(__file__).resolve().parent / "lambda_deps"
# The Lambda runtime's platform: wheels are picked for it, not for the machine that synthesizes.
PIP_TARGET_FLAGS: Final = [
    "--platform",
    "manylinux2014_x86_64",
    "--implementation",
    "cp",
    "--python-version",
    "3.11",
    "--only-binary=:all:",
]
SAM_BUILD_IMAGE: Final = "public.ecr.aws/sam/build-python3.11"


@jsii.implements(cdk.ILocalBundling)
class PipLocalBundling:
    """Bundle with the current interpreter's pip: no Docker engine needed."""

    def try_bundle(self, output_dir: str, options: Any) -> bool:
        target = Path(output_dir) / "python"
        subprocess.run(  # noqa: S603 - our own pip, our own pinned requirements file
            [
                sys.executable,
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "--no-deps",  # the requirements file pins every package of the layer
                "--requirement",
                str(DEPENDENCIES_DIR / "requirements.txt"),
                "--target",
                str(target),
                *PIP_TARGET_FLAGS,
            ],
            check=True,
        )
        return True


def dependencies_layer(scope: Construct, construct_id: str) -> lambda_.LayerVersion:
    """A layer with lambda_deps/requirements.txt installed under python/ (Lambda's layer layout).

    The asset is hashed from the requirements file, so it is bundled once per change of it. The
    tests skip bundling (context aws:cdk:bundling-stacks = []) and so need no network.
    """
    return lambda_.LayerVersion(
        scope,
        construct_id,
        code=lambda_.Code.from_asset(
            str(DEPENDENCIES_DIR),
            asset_hash_type=cdk.AssetHashType.SOURCE,
            bundling=cdk.BundlingOptions(
                image=cdk.DockerImage.from_registry(SAM_BUILD_IMAGE),
                command=["bash", "-c", "pip install --no-deps -r requirements.txt -t /asset-output/python"],
                # jsii passes the bundling options as one positional argument, not as keywords.
                local=PipLocalBundling(),  # type: ignore[arg-type]
            ),
        ),
        compatible_runtimes=[lambda_.Runtime.PYTHON_3_11],
        compatible_architectures=[lambda_.Architecture.X86_64],
        description="Flowdeck API handler dependencies (pydantic-settings, PyYAML, Jinja2, simpleeval)",
    )
