"""Shared fixtures: fake AWS credentials (no test may reach real AWS) and a Lambda context."""

from __future__ import annotations

from dataclasses import dataclass

import pytest


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
    """Under xdist, keep each costly session fixture on one worker (one CDK synthesis, one browser stack)."""
    for item in items:
        tier = item.path.parent.name
        if tier in {"stacks", "browser"}:
            item.add_marker(pytest.mark.xdist_group(tier))
