"""The runs table's keys and indexes: one definition for CDK, the local stack and tests."""

from typing import Final

from flowdeck.constants import PK, SK

# Sparse indexes: only run items carry `kind` and `workflow`, so steps and claims stay out.
BY_STARTED_INDEX: Final = "by-started"
BY_WORKFLOW_INDEX: Final = "by-workflow"
# The run history's indexes (docs/history.md: which query uses which).
BY_STATUS_INDEX: Final = "by-status"
BY_TRIGGER_INDEX: Final = "by-trigger"
BY_USER_INDEX: Final = "by-user"
BY_WORKFLOW_STATUS_INDEX: Final = "by-workflow-status"
BY_COST_INDEX: Final = "by-cost"
BY_WORKFLOW_COST_INDEX: Final = "by-workflow-cost"
BY_DURATION_INDEX: Final = "by-duration"
BY_WORKFLOW_DURATION_INDEX: Final = "by-workflow-duration"
RUN_KIND: Final = "run"
# Step items carry `status` and `started_at` too: by-status sorts on this run-only copy of the start
# time (written with started_at by RecordRunStart) so that steps stay out of it.
RUN_STARTED_AT: Final = "run_started_at"
# Set once a run has ended (flowdeck.runs.events.record_duration, from the runs stream): by-duration's key.
DURATION_MS: Final = "duration_ms"
COST_USD: Final = "cost_usd"
# by-cost's key: a run-only copy of the run's cost_usd (each usage ADD adds to both). Not cost_usd
# itself: step items carry a cost_usd string, and an index key must have one type on every item.
RUN_COST_USD: Final = "run_cost_usd"
# Every write of a run item's `status` also writes this composite (the history's workflow+status
# index key), so "failed runs of deploy" is one key, never a filter over all of deploy's runs.
WORKFLOW_STATUS: Final = "workflow_status"
# On a run item once a cancel of it is asked for: a step's start checks it in the same transaction.
CANCEL_REQUESTED_AT: Final = "cancel_requested_at"


def workflow_status(workflow: str, status: str) -> str:
    """The by-workflow-status key of a run: deploy#failed."""
    return f"{workflow}#{status}"


KEY_ATTRIBUTES: Final = {
    PK: "S",
    SK: "S",
    "kind": "S",
    "workflow": "S",
    "started_at": "S",
    "status": "S",
    RUN_STARTED_AT: "S",
    "trigger": "S",
    "started_by": "S",
    WORKFLOW_STATUS: "S",
    RUN_COST_USD: "N",
    DURATION_MS: "N",
}
# name -> (partition key, sort key). Every index is sparse: it holds run items only.
GLOBAL_INDEXES: Final = {
    BY_STARTED_INDEX: ("kind", "started_at"),
    BY_WORKFLOW_INDEX: ("workflow", "started_at"),
    BY_STATUS_INDEX: ("status", RUN_STARTED_AT),
    BY_TRIGGER_INDEX: ("trigger", "started_at"),
    BY_USER_INDEX: ("started_by", "started_at"),
    BY_WORKFLOW_STATUS_INDEX: (WORKFLOW_STATUS, "started_at"),
    BY_COST_INDEX: ("kind", RUN_COST_USD),
    BY_WORKFLOW_COST_INDEX: ("workflow", RUN_COST_USD),
    BY_DURATION_INDEX: ("kind", DURATION_MS),
    BY_WORKFLOW_DURATION_INDEX: ("workflow", DURATION_MS),
}
# What every index copies of a run: the history row's columns and filters, never `plan` or `inputs_json`
# (an index entry is rewritten whenever one of these changes: small entries keep that at one WRU).
HISTORY_ATTRIBUTES: Final = (
    "run_id",
    "workflow",
    "status",
    "trigger",
    "started_by",
    "trigger_detail",
    "started_at",
    "ended_at",
    COST_USD,
    # Written once, with the retry's run item (not `retries`: a growing set on the retried run).
    "retry_of",
)


# Beyond the row: the concurrency control promotes queued runs from by-workflow-status and starts them
# with the input they were queued with (only queued runs carry it).
EXTRA_PROJECTED: Final = {BY_WORKFLOW_STATUS_INDEX: ("start_json",)}


def index_non_key_attributes(index: str) -> list[str]:
    """The INCLUDE projection of a history index: the row's columns that are not already its keys."""
    keys = {PK, SK, *GLOBAL_INDEXES[index]}
    return [name for name in (*HISTORY_ATTRIBUTES, *EXTRA_PROJECTED.get(index, ())) if name not in keys]


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
                "Projection": {
                    "ProjectionType": "INCLUDE",
                    "NonKeyAttributes": index_non_key_attributes(name),
                },
            }
            for name, (pk, sk) in GLOBAL_INDEXES.items()
        ],
        "StreamSpecification": {"StreamEnabled": True, "StreamViewType": "NEW_AND_OLD_IMAGES"},
    }


# Deliveries table (trigger history): pk workflow (S), sk delivery = `<received_at ISO>#<delivery id>` (S).
DELIVERY_KEY_ATTRIBUTES: Final = {"workflow": "S", "delivery": "S"}


def create_deliveries_table_kwargs(table_name: str) -> dict[str, object]:
    """CreateTable arguments for the trigger history (no streams, no indexes: read per workflow only)."""
    (pk, _), (sk, _) = DELIVERY_KEY_ATTRIBUTES.items()
    return {
        "TableName": table_name,
        "BillingMode": "PAY_PER_REQUEST",
        "KeySchema": [{"AttributeName": pk, "KeyType": "HASH"}, {"AttributeName": sk, "KeyType": "RANGE"}],
        "AttributeDefinitions": [
            {"AttributeName": n, "AttributeType": t} for n, t in DELIVERY_KEY_ATTRIBUTES.items()
        ],
    }
