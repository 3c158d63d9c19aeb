"""A cancel stops the run's fresh tasks on ECS (moto): those still starting, and with force every one."""

from __future__ import annotations

import shutil
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import boto3
import pytest

from flowdeck.catalog import Catalog
from flowdeck.config import Settings
from flowdeck.control.cancel import CancelRun, RunCanceller
from flowdeck.messages import StepMessage, StepSpec
from flowdeck.runner import fresh
from flowdeck.runner.budget import BudgetGuard, FreshStop
from flowdeck.stores.fresh_tasks import FreshTasks, family_name
from flowdeck.stores.runs import RunStore
from statemachines.fresh_step import fresh_shapes
from tests.integration.conftest import ARN_PREFIX, TABLE
from tests.integration.test_budget import FakeStepFunctions
from tests.integration.test_cancel import E2E_WORKFLOWS, seed

CLUSTER = "flowdeck-fresh"


@pytest.fixture
def ecs(runs_ddb: Any, tmp_path: Path) -> tuple[Any, Catalog, str]:
    """An ECS client over moto with the fresh-cancel workflow's task family registered."""
    shutil.copy(E2E_WORKFLOWS / "fresh-cancel.yaml", tmp_path / "fresh-cancel.yaml")
    catalog = Catalog.from_dir(tmp_path)
    client = boto3.client("ecs", region_name="us-east-1")
    client.create_cluster(clusterName=CLUSTER)
    (key,) = fresh_shapes([catalog.get("fresh-cancel")])
    family = family_name(key)
    client.register_task_definition(
        family=family,
        networkMode="awsvpc",
        requiresCompatibilities=["FARGATE"],
        cpu="256",
        memory="512",
        containerDefinitions=[{"name": "runner", "image": "runner", "memory": 512}],
    )
    return client, catalog, family


def start_task(client: Any, family: str, run_id: str) -> str:
    ec2 = boto3.client("ec2", region_name="us-east-1")
    subnet = ec2.describe_subnets()["Subnets"][0]["SubnetId"]
    group = ec2.describe_security_groups(GroupNames=["default"])["SecurityGroups"][0]["GroupId"]
    (task,) = client.run_task(
        cluster=CLUSTER,
        taskDefinition=family,
        launchType="FARGATE",
        group=f"flowdeck:{run_id}",
        networkConfiguration={"awsvpcConfiguration": {"subnets": [subnet], "securityGroups": [group]}},
    )["tasks"]
    return str(task["taskArn"])


def canceller(runs_ddb: Any, client: Any, catalog: Catalog) -> RunCanceller:
    sqs = boto3.client("sqs", region_name="us-east-1")
    queue_url = sqs.create_queue(QueueName="steps")["QueueUrl"]
    sfn = boto3.client("stepfunctions", region_name="us-east-1")
    runs = RunStore(TABLE, runs_ddb)
    return RunCanceller(catalog, runs, sfn, sqs, queue_url, ARN_PREFIX, FreshTasks(CLUSTER, client))


def stopped(client: Any, arns: list[str]) -> set[str]:
    tasks = client.describe_tasks(cluster=CLUSTER, tasks=arns)["tasks"]
    return {t["taskArn"] for t in tasks if t["desiredStatus"] == "STOPPED"}


def fresh_run(runs_ddb: Any, client: Any, family: str) -> tuple[str, str, str]:
    """Run r1 with one task whose runner recorded the step running and one still starting; r2 beside."""
    running, starting, other = (start_task(client, family, run) for run in ("r1", "r1", "r2"))
    seed(runs_ddb, "r1", "running", {"trap": {"status": "running", "task_arn": running}})
    runs_ddb.update_item(
        TableName=TABLE,
        Key={"pk": {"S": "r1"}, "sk": {"S": "RUN"}},
        UpdateExpression="SET workflow = :w",
        ExpressionAttributeValues={":w": {"S": "fresh-cancel"}},
    )
    return running, starting, other


def test_the_run_tasks_are_found_by_their_group(runs_ddb: Any, ecs: Any) -> None:
    client, _, family = ecs
    running, starting, _ = fresh_run(runs_ddb, client, family)

    assert sorted(FreshTasks(CLUSTER, client).running_of_run("r1", [family])) == sorted([running, starting])


def test_a_graceful_cancel_stops_only_the_task_still_starting(runs_ddb: Any, ecs: Any) -> None:
    client, catalog, family = ecs
    running, starting, other = fresh_run(runs_ddb, client, family)

    canceller(runs_ddb, client, catalog).cancel("r1", CancelRun(mode="graceful"), caller="jane")

    # The running step's runner ends it with its grace period (the cancel record), then its task stops.
    assert stopped(client, [running, starting, other]) == {starting}


def test_a_forced_cancel_stops_every_task_of_the_run(runs_ddb: Any, ecs: Any) -> None:
    client, catalog, family = ecs
    running, starting, other = fresh_run(runs_ddb, client, family)

    canceller(runs_ddb, client, catalog).cancel("r1", CancelRun(mode="force"), caller="jane")

    assert stopped(client, [running, starting, other]) == {running, starting}
    reason = client.describe_tasks(cluster=CLUSTER, tasks=[running])["tasks"][0]["stoppedReason"]
    assert reason == "cancelled by jane"


def test_a_run_stopped_by_its_budget_stops_its_tasks_still_starting_as_a_cancel_does(
    runs_ddb: Any, ecs: Any
) -> None:
    client, catalog, family = ecs
    running, starting, other = fresh_run(runs_ddb, client, family)
    sfn = FakeStepFunctions()
    fresh = FreshStop(tasks=lambda: FreshTasks(CLUSTER, client), definition=catalog.get)
    guard = BudgetGuard(TABLE, runs_ddb, sfn, ARN_PREFIX, fresh)
    over_budget = StepMessage.model_validate(
        {
            "token": "token-trap",
            "run_id": "r1",
            "workflow": "fresh-cancel",
            "step": "trap",
            "spec": StepSpec(run="true").model_dump(by_alias=True),
            "max_cost_usd": "0.01",
        }
    )

    guard.after_usage(over_budget, Decimal("0.02"), threading.Event())

    assert [stop["error"] for stop in sfn.stops] == ["BudgetExceeded"]
    # As a graceful cancel: the task still starting stops; the running step's runner ends it itself.
    assert stopped(client, [running, starting, other]) == {starting}
    reason = client.describe_tasks(cluster=CLUSTER, tasks=[starting])["tasks"][0]["stoppedReason"]
    assert reason == "run cost $0.02 passed max_cost_usd $0.01"


def test_the_budget_guard_of_a_worker_without_a_fresh_cluster_stops_no_task() -> None:
    settings = Settings(fresh_cluster="")
    assert BudgetGuard.for_settings(settings, None, None).fresh is None
    assert FreshStop.for_settings(Settings(fresh_cluster=CLUSTER)) is not None


@pytest.mark.parametrize(("cancel_recorded", "leaves"), [(True, False), (False, True)])
def test_a_runner_told_to_stop_stays_for_a_cancel_and_leaves_at_once_otherwise(
    runs_ddb: Any, monkeypatch: pytest.MonkeyPatch, cancel_recorded: bool, leaves: bool
) -> None:
    seed(runs_ddb, "r1", "running", {"trap": {"status": "running"}})
    if cancel_recorded:  # a cancel (or the budget guard) records itself before it calls StopTask
        runs_ddb.update_item(
            TableName=TABLE,
            Key={"pk": {"S": "r1"}, "sk": {"S": "RUN"}},
            UpdateExpression="SET cancel_requested_at = :now",
            ExpressionAttributeValues={":now": {"S": "2026-12-06T10:00:00Z"}},
        )
    exits: list[int] = []
    monkeypatch.setattr(fresh.os, "_exit", exits.append)

    fresh.on_stop(Settings(runs_table=TABLE), {"FLOWDECK_FRESH_RUN_ID": "r1"})

    # Leaving, the task stops now and ECS's stopped event fails the step with the stop's reason.
    assert exits == ([143] if leaves else [])
