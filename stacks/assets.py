"""Where the CDK app finds the repository's code, and which parts each asset ships."""

from __future__ import annotations

from pathlib import Path
from typing import Final

REPO_ROOT: Final = Path(__file__).resolve().parent.parent


def allow_list(*entries: str) -> list[str]:
    """Glob exclude patterns that stage only `entries` (top-level names) of the repository.

    An allow-list rather than a deny-list: a new top-level folder (cdk.out, .venv, web/) can never
    leak into an asset, recurse into the assembly or change the asset hash by accident.
    """
    patterns = ["*", ".*"]
    for entry in entries:
        patterns += [f"!{entry}", f"!{entry}/**"]
    # Last match wins in CDK's glob strategy, so bytecode is dropped even inside allowed folders.
    return [*patterns, "**/__pycache__", "**/__pycache__/**", "**/*.pyc"]


# The handlers import the core, the compiler and the definitions; nothing else belongs in the zip.
LAMBDA_CODE_EXCLUDE: Final = allow_list("flowdeck", "lambdas", "statemachines", "workflows")

# What the Dockerfile copies: the package, and workflows/ as the steps' workspace (./scripts/...).
WORKER_IMAGE_EXCLUDE: Final = allow_list(
    "Dockerfile", "pyproject.toml", "flowdeck", "statemachines", "workflows"
)
