"""Where a retry starts and which steps it reuses, on sequences and DAGs with parallel branches."""

from __future__ import annotations

import textwrap

import pytest

from flowdeck.control.retry import Retries, downstream, plan_retry, retry_run_id
from flowdeck.definition import WorkflowDefinition, parse_workflow
from flowdeck.errors import BadRequest, Conflict

SEQUENCE = """
name: release
steps:
  - {id: prepare, run: echo}
  - {id: build, run: echo}
  - {id: publish, run: echo}
"""

# prepare -> (lint | test -> report) -> ship
DIAMOND = """
name: ci
steps:
  - {id: prepare, run: echo}
  - {id: lint, needs: [prepare], run: echo}
  - {id: test, needs: [prepare], run: echo}
  - {id: report, needs: [test], run: echo}
  - {id: ship, needs: [lint, report], run: echo}
"""


def definition_of(text: str) -> WorkflowDefinition:
    return parse_workflow(textwrap.dedent(text).lstrip("\n"), "wf.yaml")


def test_without_from_step_it_starts_at_the_failed_step_and_reuses_what_came_before():
    statuses = {"prepare": "succeeded", "build": "failed"}

    plan = plan_retry(definition_of(SEQUENCE), "failed", statuses, None)

    assert plan.start == ["build"]
    assert plan.reused == ["prepare"]


def test_from_a_middle_step_reuses_only_the_steps_before_it():
    statuses = {"prepare": "succeeded", "build": "succeeded", "publish": "succeeded"}

    plan = plan_retry(definition_of(SEQUENCE), "succeeded", statuses, "build")

    assert plan.start == ["build"]
    assert plan.reused == ["prepare"]


def test_from_the_first_step_nothing_is_reused():
    statuses = {"prepare": "succeeded", "build": "failed"}

    plan = plan_retry(definition_of(SEQUENCE), "failed", statuses, "prepare")

    assert plan == plan.__class__(start=["prepare"], reused=[])


def test_a_failed_branch_is_retried_and_the_sibling_branch_that_succeeded_is_reused():
    statuses = {"prepare": "succeeded", "lint": "succeeded", "test": "failed"}

    plan = plan_retry(definition_of(DIAMOND), "failed", statuses, None)

    # report and ship depend on test (ship through report): they run again; lint does not.
    assert plan.start == ["test"]
    assert plan.reused == ["prepare", "lint"]


def test_a_sibling_branch_cancelled_by_the_failure_runs_again():
    statuses = {"prepare": "succeeded", "lint": "cancelled", "test": "failed"}

    plan = plan_retry(definition_of(DIAMOND), "failed", statuses, None)

    assert plan.reused == ["prepare"]


def test_every_failed_step_is_a_start_point():
    statuses = {"prepare": "succeeded", "lint": "failed", "test": "failed"}

    plan = plan_retry(definition_of(DIAMOND), "failed", statuses, None)

    assert plan.start == ["lint", "test"]
    assert plan.reused == ["prepare"]


def test_from_a_branch_step_reuses_the_other_branch_and_everything_upstream():
    statuses = dict.fromkeys(["prepare", "lint", "test", "report", "ship"], "succeeded")

    plan = plan_retry(definition_of(DIAMOND), "succeeded", statuses, "report")

    assert plan.reused == ["prepare", "lint", "test"]


def test_a_step_skipped_before_the_start_point_is_reused_as_skipped():
    statuses = {"prepare": "skipped", "build": "failed"}

    plan = plan_retry(definition_of(SEQUENCE), "failed", statuses, None)

    assert plan.reused == ["prepare"]


@pytest.mark.parametrize("run_status", ["cancelled", "timed_out"])
def test_a_run_that_ended_without_a_failed_step_starts_at_the_first_unfinished_step(run_status):
    statuses = {"prepare": "succeeded", "build": "cancelled"}

    plan = plan_retry(definition_of(SEQUENCE), run_status, statuses, None)

    assert plan.start == ["build"]
    assert plan.reused == ["prepare"]


def test_a_succeeded_run_without_from_step_has_nothing_to_retry():
    statuses = dict.fromkeys(["prepare", "build", "publish"], "succeeded")

    with pytest.raises(Conflict, match="pass from_step"):
        plan_retry(definition_of(SEQUENCE), "succeeded", statuses, None)


def test_an_unknown_from_step_is_refused_with_the_step_named():
    with pytest.raises(BadRequest, match="'deploy'"):
        plan_retry(definition_of(SEQUENCE), "failed", {"prepare": "failed"}, "deploy")


def test_downstream_follows_needs_transitively():
    deps = definition_of(DIAMOND).dependencies()

    assert downstream(deps, ["test"]) == {"test", "report", "ship"}
    assert downstream(deps, ["prepare"]) == {"prepare", "lint", "test", "report", "ship"}


def test_new_inputs_are_laid_over_the_old_ones_and_undeclared_old_ones_are_dropped():
    definition = definition_of(
        """
        name: deploy
        inputs:
          environment: {type: string, default: staging}
          replicas: {type: integer, default: 2}
        steps:
          - {id: go, run: echo}
        """
    )
    run = {"inputs_json": '{"environment": "production", "replicas": 3, "removed": true}'}

    assert Retries.inputs(definition, run, {"replicas": 5}) == {"environment": "production", "replicas": 5}


def test_an_idempotency_key_names_one_retry_per_run():
    first = retry_run_id("ci", "run-1", "key")

    assert retry_run_id("ci", "run-1", "key") == first
    assert retry_run_id("ci", "run-2", "key") != first
    assert retry_run_id("ci", "run-1", None) != retry_run_id("ci", "run-1", None)
