"""Imported once by the emulator's task forkserver (flowdeck.local.ecs_tasks): what every task needs.

Importing this module is its purpose: the runner's modules, and the AWS service models its clients
load (botocore reads and parses their JSON on a session's first client of each service). Each task
process is forked from the server after this ran, so none pays for it again.
"""

from __future__ import annotations

import boto3

import flowdeck.runner.fresh  # noqa: F401 - imported for the forked tasks

# The runner's clients: Step Functions (token), DynamoDB (runs, logs), S3 (artifacts).
RUNNER_SERVICES = ("stepfunctions", "dynamodb", "s3")

boto3.setup_default_session(region_name="us-east-1")
for _service in RUNNER_SERVICES:
    # A client per service loads its model into the default session's cache; no connection is made.
    boto3.client(_service)  # type: ignore[call-overload]
