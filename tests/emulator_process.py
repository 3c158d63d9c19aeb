"""The local AWS emulator in its own process, as the local stack runs it, for tests that call it directly."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import boto3

from flowdeck.local.stack import REGION, _wait_for_port, free_port


@contextmanager
def emulator_process(env: dict[str, str] | None = None) -> Iterator[str]:
    """Start `python -m flowdeck.local.emulator` on a free port; yield its endpoint; stop it."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "flowdeck.local.emulator", "--port", str(port)],
        env=os.environ | {"FLOWDECK_EXIT_WITH_PARENT": str(os.getpid())} | (env or {}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        _wait_for_port(port, process, timeout=90)  # a loaded machine starts it slowly
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)


def emulator_client(endpoint: str, service: str) -> Any:
    """A boto3 client of the emulator."""
    return boto3.client(
        service,  # type: ignore[call-overload]
        region_name=REGION,
        endpoint_url=endpoint,
        aws_access_key_id="local",
        aws_secret_access_key="local",
    )
