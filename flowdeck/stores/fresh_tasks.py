"""The ECS tasks of fresh steps: find a run's tasks by their group and stop them (a cancel)."""

from __future__ import annotations

import logging
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from flowdeck.constants import FRESH_GROUP_PREFIX

log = logging.getLogger("flowdeck.fresh")

FAMILY_PREFIX = "flowdeck-fresh-"
# DescribeTasks takes at most 100 tasks a call.
DESCRIBE_BATCH = 100
MAX_STOP_REASON = 255


def family_name(shape_key: str) -> str:
    """The task definition family of one image/resources pair (statemachines.fresh_step.FreshTaskShape)."""
    return FAMILY_PREFIX + shape_key


class FreshTasks:
    """Stops the Fargate tasks a run's fresh steps were started in (ListTasks, DescribeTasks, StopTask)."""

    def __init__(self, cluster: str, client: Any) -> None:
        self.cluster = cluster
        self.client = client

    def running_of_run(self, run_id: str, families: list[str]) -> list[str]:
        """ARNs of the run's tasks not yet stopped, among the given families (starting ones too)."""
        arns: list[str] = []
        for family in families:
            pages = self.client.get_paginator("list_tasks").paginate(
                cluster=self.cluster, family=family, desiredStatus="RUNNING"
            )
            arns += [arn for page in pages for arn in page.get("taskArns", [])]
        group = FRESH_GROUP_PREFIX + run_id
        mine: list[str] = []
        for start in range(0, len(arns), DESCRIBE_BATCH):
            described = self.client.describe_tasks(
                cluster=self.cluster, tasks=arns[start : start + DESCRIBE_BATCH]
            )
            mine += [task["taskArn"] for task in described.get("tasks", []) if task.get("group") == group]
        return mine

    def running_of_run_safe(self, run_id: str, families: list[str]) -> list[str]:
        """running_of_run, or none when ECS cannot answer (the runners still end on the cancel record)."""
        try:
            return self.running_of_run(run_id, families)
        except (ClientError, BotoCoreError) as exc:
            log.warning("run %s: its fresh tasks could not be listed: %s", run_id, exc)
            return []

    def stop(self, arns: list[str], run_id: str, reason: str) -> list[str]:
        """StopTask each (a task still pulling its image stops too); the ARNs stopped."""
        stopped: list[str] = []
        for arn in arns:
            try:
                self.client.stop_task(cluster=self.cluster, task=arn, reason=reason[:MAX_STOP_REASON])
                stopped.append(arn)
            except (ClientError, BotoCoreError) as exc:
                # Its runner still ends the step on the cancel record; the stop only saves its start.
                log.warning("run %s: StopTask %s failed: %s", run_id, arn, exc)
        return stopped
