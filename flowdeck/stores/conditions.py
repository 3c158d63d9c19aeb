"""Conditional DynamoDB writes: a condition that does not hold is an answer, not an error."""

from __future__ import annotations

from types import TracebackType
from typing import Final

from botocore.exceptions import ClientError

CONDITION_FAILED: Final = "ConditionalCheckFailedException"


def condition_failed(exc: BaseException | None) -> bool:
    """Whether `exc` is DynamoDB refusing a write because its condition did not hold."""
    return isinstance(exc, ClientError) and exc.response.get("Error", {}).get("Code") == CONDITION_FAILED


class conditional:
    """`with conditional() as write: <one conditional write>`; then `write.held` says if it landed.

    Other errors pass through; only the failed condition is swallowed.
    """

    held: bool = True

    def __enter__(self) -> conditional:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        if condition_failed(exc):
            self.held = False
            return True
        return False
