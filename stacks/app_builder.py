"""Build the Flowdeck CDK app from a folder of workflow definitions (used by app.py and the tests)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import aws_cdk as cdk
from cdk_nag import AwsSolutionsChecks

from flowdeck.constants import ENV_FRESH_CLUSTER
from flowdeck.definition import load_workflows
from flowdeck.triggers.switch import trigger_resources
from stacks.api import ApiStack
from stacks.compute import ComputeStack
from stacks.data import DataStack, suppress_runs_index_grants
from stacks.live import LiveStack
from stacks.notify import NotifyStack
from stacks.run_events import RunEventsHandler
from stacks.stopped_tasks import StoppedTasksHandler
from stacks.triggers import TriggersStack
from stacks.web import WebConfigStack, WebStack, admit_dashboard
from stacks.workflows import WorkflowsStack

DATA_STACK: Final = "FlowdeckData"
COMPUTE_STACK: Final = "FlowdeckCompute"
WORKFLOWS_STACK: Final = "FlowdeckWorkflows"
API_STACK: Final = "FlowdeckApi"
LIVE_STACK: Final = "FlowdeckLive"
TRIGGERS_STACK: Final = "FlowdeckTriggers"
NOTIFY_STACK: Final = "FlowdeckNotify"
WEB_STACK: Final = "FlowdeckWeb"
WEB_CONFIG_STACK: Final = "FlowdeckWebConfig"

# Set here rather than in cdk.json so `cdk synth`, `python app.py` and the tests build the same
# templates: a plain cdk.App() never reads cdk.json.
FEATURE_FLAGS: Final = {
    # Grant log delivery through the logs bucket's policy instead of the legacy ACL.
    "@aws-cdk/aws-s3:serverAccessLogsUseBucketPolicy": True,
    # Imports between the stacks name long-lived resources (table, bucket, queue): keep
    # CloudFormation exports, which stop a producer from deleting what a consumer still uses.
    "@aws-cdk/core:defaultCrossStackReferences": "strong",
}


def build_app(workflows_dir: Path, app: cdk.App | None = None) -> cdk.App:
    """Add the Flowdeck stacks and the cdk-nag AwsSolutions checks to `app` (a new one if None)."""
    if not workflows_dir.is_dir():
        raise FileNotFoundError(f"workflows folder not found: {workflows_dir}")
    # Raises InvalidDefinition (file, line, field) before any construct exists.
    definitions = load_workflows(workflows_dir)
    app = app if app is not None else cdk.App()
    for flag, value in FEATURE_FLAGS.items():
        app.node.set_context(flag, value)

    data = DataStack(app, DATA_STACK, definitions=definitions)
    compute = ComputeStack(
        app,
        COMPUTE_STACK,
        table=data.run_store.table,
        artifacts=data.artifacts,
        logs_table=data.logs_table,
        definitions=definitions,
    )
    workflows = WorkflowsStack(
        app,
        WORKFLOWS_STACK,
        definitions=definitions,
        table=data.run_store.table,
        queue=compute.workers.queue,
        fresh=compute.fresh,
    )
    # In the workflows stack: it starts their executions (queued runs) with grants on the machines.
    RunEventsHandler(
        workflows,
        "RunEvents",
        table=data.run_store.table,
        state_machines=[w.state_machine for w in workflows.workflows.values()],
        deliveries_table=data.deliveries_table,
    )
    if compute.fresh.shapes:
        # A fresh task that stops before its runner answered fails its step at once (not at the heartbeat).
        StoppedTasksHandler(
            workflows,
            "StoppedFreshTasks",
            cluster=compute.fresh.cluster,
            state_machines=[w.state_machine for w in workflows.workflows.values() if w.fresh is not None],
        )
    # Before the APIs: they admit its origin (CORS) and read its user pool's members.
    web = WebStack(app, WEB_STACK)
    api = ApiStack(
        app,
        API_STACK,
        table=data.run_store.table,
        artifacts=data.artifacts,
        workflow_names=sorted(definitions),
        logs_table=data.logs_table,
        deliveries_table=data.deliveries_table,
        steps_queue=compute.workers.queue,
        # Pausing a workflow disables its schedules and rules (the triggers stack names them so).
        triggers=[t for d in definitions.values() for t in trigger_resources(d)],
    )
    if compute.fresh.shapes:
        # A cancel stops the run's fresh tasks (those still starting; with force, every one).
        compute.fresh.grant_stop(api.runs_api.role)
        api.runs_api.function.add_environment(ENV_FRESH_CLUSTER, compute.fresh.cluster.cluster_name)
    # The API starts executions of state machines it names by ARN, not by reference: deploy them first.
    api.add_stack_dependency(workflows)
    live = LiveStack(app, LIVE_STACK, runs_table=data.run_store.table, logs_table=data.logs_table)
    # The WebSocket stage's execution logs use the account's API Gateway CloudWatch role (set by the API).
    live.add_dependency(api)

    admit_dashboard(
        web=web,
        rest_api=api.runs_api.api,
        api_handlers=[api.runs_api.function, live.live_logs.ws_function],
    )
    # After both APIs: config.json and the signed-in role's invoke grant name them.
    WebConfigStack(
        app,
        WEB_CONFIG_STACK,
        web=web,
        rest_api=api.runs_api.api,
        websocket_api=live.live_logs.api,
        websocket_stage=live.live_logs.stage,
    )

    triggers = TriggersStack(app, TRIGGERS_STACK, definitions=definitions)
    # Schedules and rules name the state machines by ARN, not by reference: deploy those first.
    triggers.add_stack_dependency(workflows)
    # After the API (links point at its URL); the state machines and the API name its queue and
    # secrets by fixed names, so nothing before it imports from it.
    NotifyStack(app, NOTIFY_STACK, table=data.run_store.table, api=api.runs_api.api)

    # Every grant on the runs table now carries its history indexes (index/*).
    suppress_runs_index_grants(app)
    cdk.Aspects.of(app).add(AwsSolutionsChecks(verbose=True))
    return app
