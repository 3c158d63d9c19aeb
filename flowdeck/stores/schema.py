"""The runs table's keys and indexes: one definition for CDK, the local stack and tests."""

from typing import Final

from flowdeck.constants import PK, SK

# Sparse indexes: only run items carry `kind` and `workflow`, so steps and claims stay out.
BY_STARTED_INDEX: Final = "by-started"
BY_WORKFLOW_INDEX: Final = "by-workflow"
RUN_KIND: Final = "run"
# Every write of a run item's `status` also writes this composite (the history's workflow+status
# index key), so "failed runs of deploy" is one key, never a filter over all of deploy's runs.
WORKFLOW_STATUS: Final = "workflow_status"


def workflow_status(workflow: str, status: str) -> str:
    """The by-workflow-status key of a run: deploy#failed."""
    return f"{workflow}#{status}"


KEY_ATTRIBUTES: Final = {PK: "S", SK: "S", "kind": "S", "workflow": "S", "started_at": "S"}
GLOBAL_INDEXES: Final = {
    BY_STARTED_INDEX: ("kind", "started_at"),
    BY_WORKFLOW_INDEX: ("workflow", "started_at"),
}


# Logs table: pk run_id (S), sk seq (N): one item per batch of lines, in commit order per run.
LOG_KEY_ATTRIBUTES: Final = {"run_id": "S", "seq": "N"}
# Connections table: pk connection_id (S); index by the run a connection watches.
CONNECTIONS_BY_RUN_INDEX: Final = "by-run"
CONNECTION_KEY_ATTRIBUTES: Final = {"connection_id": "S", "run_id": "S"}


def create_logs_table_kwargs(table_name: str) -> dict[str, object]:
    """CreateTable arguments for the logs table (streams on: the fan-out reads new batches)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [
            {"AttributeName": "run_id", "KeyType": "HASH"},
            {"AttributeName": "seq", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in LOG_KEY_ATTRIBUTES.items()
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_IMAGE"},
    }


def create_connections_table_kwargs(table_name: str) -> dict[str, object]:
    """CreateTable arguments for the WebSocket connections table."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": "connection_id", "KeyType": "HASH"}],
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in CONNECTION_KEY_ATTRIBUTES.items()
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": CONNECTIONS_BY_RUN_INDEX,
                "KeySchema": [{"AttributeName": "run_id", "KeyType": "HASH"}],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
    }


def create_table_kwargs(table_name: str) -> dict[str, object]:
    """Arguments for DynamoDB CreateTable (the local stack and integration tests)."""
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": PK, "KeyType": "HASH"}, {"AttributeName": SK, "KeyType": "RANGE"}],
        "AttributeDefinitions": [{"AttributeName": n, "AttributeType": t} for n, t in KEY_ATTRIBUTES.items()],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": name,
                "KeySchema": [
                    {"AttributeName": pk, "KeyType": "HASH"},
                    {"AttributeName": sk, "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
            for name, (pk, sk) in GLOBAL_INDEXES.items()
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }
