"""Names shared by stacks, handlers, the local stack and tests: one place, no drift."""

from typing import Final

# Resource names (the local stack uses them verbatim; CDK lets CloudFormation name most resources
# and passes the real names through the environment variables below).
RUNS_TABLE: Final = "flowdeck-runs"
STEPS_QUEUE: Final = "flowdeck-steps"
STEPS_DLQ: Final = "flowdeck-steps-dlq"
ARTIFACTS_BUCKET: Final = "flowdeck-artifacts"
STATE_MACHINE_PREFIX: Final = "flowdeck-"
LOGS_TABLE: Final = "flowdeck-logs"
CONNECTIONS_TABLE: Final = "flowdeck-connections"
# Trigger history (webhook, git, schedule and event deliveries per workflow).
DELIVERIES_TABLE: Final = "flowdeck-deliveries"
# Approval requests for the notifier (issue 4), and where its failed deliveries land.
APPROVALS_QUEUE: Final = "flowdeck-approvals"
APPROVALS_DLQ: Final = "flowdeck-approvals-dlq"
# Secrets Manager names the approvals code reads (Settings defaults) and the notify stack creates.
SLACK_SECRET: Final = "flowdeck/slack"  # noqa: S105 - a secret's name, not a secret
APPROVAL_LINK_SECRET: Final = "flowdeck/approvals/link-key"  # noqa: S105 - a secret's name, not a secret

# Environment variables: config flows CDK -> env var -> flowdeck.config.Settings.
ENV_RUNS_TABLE: Final = "FLOWDECK_RUNS_TABLE"
ENV_STEPS_QUEUE_URL: Final = "FLOWDECK_STEPS_QUEUE_URL"
ENV_ARTIFACTS_BUCKET: Final = "FLOWDECK_ARTIFACTS_BUCKET"
ENV_STATE_MACHINE_ARN_PREFIX: Final = "FLOWDECK_STATE_MACHINE_ARN_PREFIX"
ENV_WORKFLOWS_DIR: Final = "FLOWDECK_WORKFLOWS_DIR"
ENV_FRESH_CLUSTER: Final = "FLOWDECK_FRESH_CLUSTER"
ENV_AWS_ENDPOINT_URL: Final = "FLOWDECK_AWS_ENDPOINT_URL"
ENV_LOGS_TABLE: Final = "FLOWDECK_LOGS_TABLE"
ENV_CONNECTIONS_TABLE: Final = "FLOWDECK_CONNECTIONS_TABLE"
ENV_DELIVERIES_TABLE: Final = "FLOWDECK_DELIVERIES_TABLE"
# AWS only: pausing a workflow disables its schedules (in this Scheduler group) and rules.
ENV_MANAGE_TRIGGERS: Final = "FLOWDECK_MANAGE_TRIGGERS"
ENV_SCHEDULE_GROUP: Final = "FLOWDECK_SCHEDULE_GROUP"
ENV_APPROVALS_QUEUE_URL: Final = "FLOWDECK_APPROVALS_QUEUE_URL"
ENV_PUBLIC_API_URL: Final = "FLOWDECK_PUBLIC_API_URL"
# The dashboard's base URL (SPEC §6): approval e-mails and Slack messages link a run's page there.
ENV_DASHBOARD_URL: Final = "FLOWDECK_DASHBOARD_URL"
ENV_USER_POOL_ID: Final = "FLOWDECK_USER_POOL_ID"
# Request headers the dashboard sends to the REST API (SigV4's among them): CORS must allow each.
CORS_ALLOW_HEADERS: Final = (
    "Authorization",
    "Content-Type",
    "Idempotency-Key",
    "X-Amz-Content-Sha256",
    "X-Amz-Date",
    "X-Amz-Security-Token",
)
ENV_SES_SENDER: Final = "FLOWDECK_SES_SENDER"
ENV_SLACK_SECRET_NAME: Final = "FLOWDECK_SLACK_SECRET_NAME"  # noqa: S105 - a variable's name
ENV_APPROVAL_LINK_SECRET_NAME: Final = "FLOWDECK_APPROVAL_LINK_SECRET_NAME"  # noqa: S105 - a variable's name
# The API Gateway management endpoint the fan-out posts to (https://{api}.execute-api.../{stage});
# locally the local HTTP server answers the same @connections API.
ENV_WEBSOCKET_ENDPOINT: Final = "FLOWDECK_WEBSOCKET_ENDPOINT"
# Set by the local stack: the handlers run inside `flowdeck up`, whose terminal shows runs, not JSON logs.
ENV_HANDLER_LOG: Final = "FLOWDECK_HANDLER_LOG"

# Placeholders in compiled ASL, substituted by CDK (definition_substitutions) or the local stack.
ASL_RUNS_TABLE: Final = "RunsTableName"
ASL_STEPS_QUEUE_URL: Final = "StepsQueueUrl"
ASL_APPROVALS_QUEUE_URL: Final = "ApprovalsQueueUrl"
# Fresh mode (one Fargate task per step): the cluster, the tasks' subnets (comma-separated) and
# security group, and one task definition per distinct image/resources pair (FreshTask<key>).
ASL_FRESH_CLUSTER: Final = "FreshClusterArn"
ASL_FRESH_SUBNETS: Final = "FreshSubnetIds"
ASL_FRESH_SECURITY_GROUP: Final = "FreshSecurityGroupId"
ASL_FRESH_PUBLIC_IP: Final = "FreshAssignPublicIp"  # ENABLED | DISABLED
ASL_FRESH_TASK_PREFIX: Final = "FreshTask"

# A fresh task's containers: the Flowdeck runner (answers the token) and, for a step with its own
# image, the step's container, which the runner reaches through a shared volume (flowdeck.runner.shim).
FRESH_RUNNER_CONTAINER: Final = "runner"
FRESH_STEP_CONTAINER: Final = "step"
# What the state machine tells a fresh task's runner (container overrides, at most 8,192 characters:
# identity only; inputs and earlier outputs are read from the run record).
ENV_FRESH_TOKEN: Final = "FLOWDECK_FRESH_TOKEN"  # noqa: S105 - a variable's name
ENV_FRESH_RUN_ID: Final = "FLOWDECK_FRESH_RUN_ID"
ENV_FRESH_WORKFLOW: Final = "FLOWDECK_FRESH_WORKFLOW"
ENV_FRESH_STEP: Final = "FLOWDECK_FRESH_STEP"
ENV_FRESH_RETRY_COUNT: Final = "FLOWDECK_FRESH_RETRY_COUNT"
ENV_FRESH_ATTEMPT_BASE: Final = "FLOWDECK_FRESH_ATTEMPT_BASE"
# The group every fresh task of a run is started in (`flowdeck:<run id>`): a cancel finds them by it.
FRESH_GROUP_PREFIX: Final = "flowdeck:"
# A fresh task that stopped before its runner answered (image pull failed, container exited, out of
# memory, stopped by someone): its token is failed with this error and the task's stop reason.
TASK_STOPPED: Final = "TaskStopped"

# Runs table layout: one item per run (sk RUN) plus one per step (sk STEP#<id>): status, attempts, outputs.
PK: Final = "pk"
SK: Final = "sk"
RUN_SK: Final = "RUN"
STEP_SK_PREFIX: Final = "STEP#"
# One item per run holds every step's published outputs (attribute outputs#<step>): one read for
# a step that starts, whatever the number of earlier steps.
OUTPUTS_SK: Final = "OUTPUTS"
OUTPUTS_PREFIX: Final = "outputs#"
# The token the state machine writes on a step whose worker it gave up on: final, never overwritten.
LOST_TOKEN: Final = "lost"  # noqa: S105 - a marker value, not a secret
# Each attempt of a step is a map attribute of the step item: attempt#1, attempt#2, ...
ATTEMPT_PREFIX: Final = "attempt#"
TTL_ATTRIBUTE: Final = "expires_at"
# Run totals of model tokens, one Number attribute per model (atomic ADD without a parent map).
TOKENS_IN_PREFIX: Final = "tokens_in#"
TOKENS_OUT_PREFIX: Final = "tokens_out#"

# Step dispatch defaults.
HEARTBEAT_EVERY_SECONDS: Final = 10
DEFAULT_STEP_TIMEOUT_SECONDS: Final = 6 * 3600
# A pool worker told to stop (ECS scale-in or deploy) fails a step it cannot finish in time with this
# error; the state machine retries it on another worker up to WORKER_STOPPED_RETRIES times, beside the
# step's own retries (statemachines/run_step.py).
WORKER_STOPPED: Final = "WorkerStopped"
WORKER_STOPPED_RETRIES: Final = 2
# ECS's wait between SIGTERM and SIGKILL for a pool worker (the container's stopTimeout; Fargate's maximum).
WORKER_STOP_TIMEOUT_SECONDS: Final = 120
ENV_WORKER_STOP_SECONDS: Final = "FLOWDECK_WORKER_STOP_SECONDS"

# How often a failed stream batch is retried before it goes to the DLQ: the event source mappings'
# retry_attempts on AWS (stacks.live, stacks.run_events), the local stream pollers' too.
FANOUT_STREAM_RETRY_ATTEMPTS: Final = 3
RUN_EVENTS_RETRY_ATTEMPTS: Final = 5

# Artifacts bucket layout: runs/<workflow>/<run_id>/<step>/<path>, so lifecycle rules expire per workflow.
ARTIFACT_KEY_PREFIX: Final = "runs/"

# The REST API's edge: the local server's address and the largest request body either home accepts.
# API Gateway's own limit is 10 MB; ours is lower on purpose (run inputs are small, Step Functions caps
# a state's payload at 256 KiB), so a stray upload fails fast with 413 instead of deep in a run.
LOCAL_API_HOST: Final = "127.0.0.1"
LOCAL_API_PORT: Final = 8765
MAX_REQUEST_BODY_BYTES: Final = 1024 * 1024
# Who started a run, locally only (settings.trust_user_header); on AWS identity comes from IAM.
USER_HEADER: Final = "X-Flowdeck-User"

# The workflow `flowdeck up --demo` (and `make run`) runs.
DEMO_WORKFLOW: Final = "production-deploy"
