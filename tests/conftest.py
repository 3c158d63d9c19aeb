"""Shared fixtures: fake AWS credentials (no test may reach real AWS) and a Lambda context."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from flowdeck.local.stack import LocalStack, free_port

TESTS = Path(__file__).parent
REPO = TESTS.parent


@pytest.fixture(autouse=True)
def aws_test_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake credentials and a fixed region for every test, before any boto3 client exists."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_SECURITY_TOKEN", "testing")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    monkeypatch.delenv("AWS_PROFILE", raising=False)


@dataclass
class FakeLambdaContext:
    """What powertools' inject_lambda_context reads from a real context."""

    function_name: str = "flowdeck-test"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:flowdeck-test"
    aws_request_id: str = "00000000-0000-0000-0000-000000000000"

    def get_remaining_time_in_millis(self) -> int:
        return 30_000


@pytest.fixture
def lambda_context() -> FakeLambdaContext:
    return FakeLambdaContext()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Under xdist, keep the CDK synthesis (a session fixture of a minute) on one worker."""
    for item in items:
        if item.path.parent.name == "stacks":
            item.add_marker(pytest.mark.xdist_group("stacks"))


@pytest.fixture(scope="session")
def workflows_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's example workflows, the e2e and the browser tests' workflows, in one folder."""
    folder = tmp_path_factory.mktemp("workflows")
    shutil.copytree(REPO / "workflows", folder, dirs_exist_ok=True)
    for source in (TESTS / "e2e" / "workflows", TESTS / "browser" / "workflows"):
        for path in source.glob("*.yaml"):
            shutil.copy(path, folder / path.name)
    return folder


@pytest.fixture(scope="session")
def stack(workflows_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalStack]:
    """One local stack per test process, shared by the e2e and browser tiers.

    The API handler runs in the test process and takes its settings from the process's environment,
    so two stacks alive at once in one process would answer with each other's settings.
    """
    local = LocalStack(
        workflows_dir,
        port=free_port(),
        workers=2,
        data_dir=tmp_path_factory.mktemp("flowdeck"),
        keep_state=False,
    )
    with local:
        yield local
