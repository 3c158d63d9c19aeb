#!/usr/bin/env python3
"""CDK entry point: build the Flowdeck stacks from the workflows folder and synthesize them."""

import os
from pathlib import Path

import aws_cdk as cdk

from stacks.app_builder import build_app

REPO_ROOT = Path(__file__).resolve().parent


def main() -> None:
    # The CDK CLI passes CDK_OUTDIR; a bare `python app.py` writes where `cdk` would (cdk.json "output").
    app = cdk.App(outdir=os.environ.get("CDK_OUTDIR", str(REPO_ROOT / "cdk.out")))
    # `cdk synth -c workflows_dir=...` overrides; relative paths are relative to the repository.
    workflows_dir = Path(app.node.try_get_context("workflows_dir") or "workflows")
    if not workflows_dir.is_absolute():
        workflows_dir = REPO_ROOT / workflows_dir
    build_app(workflows_dir, app)
    app.synth()


if __name__ == "__main__":
    main()
