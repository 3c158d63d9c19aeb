"""conditional(): a failed DynamoDB condition is an answer; every other error still raises."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError

from flowdeck.stores.conditions import conditional


def error(code: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": "..."}}, "UpdateItem")


def test_a_write_that_lands_is_held() -> None:
    with conditional() as write:
        pass
    assert write.held is True


def test_a_failed_condition_is_swallowed_and_not_held() -> None:
    with conditional() as write:
        raise error("ConditionalCheckFailedException")
    assert write.held is False


def test_other_errors_pass_through() -> None:
    with pytest.raises(ClientError), conditional():
        raise error("ProvisionedThroughputExceededException")
    with pytest.raises(ValueError), conditional():
        raise ValueError("not a DynamoDB answer")
