"""The run-events Lambda (workflows stack): runs stream -> reactions, a DLQ, least-privilege grants."""

from __future__ import annotations

from typing import Any

from aws_cdk import assertions
from stack_helpers import as_list, policy_statements, resources_of

from flowdeck.constants import ENV_DELIVERIES_TABLE, ENV_RUNS_TABLE, ENV_STATE_MACHINE_ARN_PREFIX
from stacks.run_events import RUN_EVENTS_HANDLER


def _run_events_function(template: assertions.Template) -> tuple[str, dict[str, Any]]:
    found = [
        (logical_id, resource["Properties"])
        for logical_id, resource in resources_of(template, "AWS::Lambda::Function").items()
        if resource["Properties"]["Handler"] == RUN_EVENTS_HANDLER
    ]
    assert len(found) == 1
    return found[0]


def test_reads_the_runs_stream_from_latest_with_partial_failures_bisect_bounded_retries_and_a_dlq(
    workflows_template: assertions.Template,
) -> None:
    function_id, _ = _run_events_function(workflows_template)
    mappings = [
        m["Properties"]
        for m in resources_of(workflows_template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    ]
    assert len(mappings) == 1
    mapping = mappings[0]
    assert mapping["StartingPosition"] == "LATEST"
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["BisectBatchOnFunctionError"] is True
    assert 0 < mapping["MaximumRetryAttempts"] <= 10
    assert "Fn::ImportValue" in str(mapping["EventSourceArn"])  # the data stack's runs table stream
    dlq_arn = mapping["DestinationConfig"]["OnFailure"]["Destination"]
    queue_id = dlq_arn["Fn::GetAtt"][0]
    queue = resources_of(workflows_template, "AWS::SQS::Queue")[queue_id]["Properties"]
    assert queue["SqsManagedSseEnabled"] is True


def test_only_run_items_and_steps_leaving_running_or_owing_an_answer_invoke_it(
    workflows_template: assertions.Template,
) -> None:
    function_id, _ = _run_events_function(workflows_template)
    mapping = next(
        m["Properties"]
        for m in resources_of(workflows_template, "AWS::Lambda::EventSourceMapping").values()
        if m["Properties"]["FunctionName"] == {"Ref": function_id}
    )
    patterns = [f["Pattern"] for f in mapping["FilterCriteria"]["Filters"]]
    assert patterns == [
        '{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"sk":{"S":["RUN"]}}}}',
        # A step whose process ended: the last one of a run being cancelled settles it.
        '{"eventName":["MODIFY"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"STEP#"}]}},'
        '"OldImage":{"status":{"S":["running"]}},"NewImage":{"status":{"S":[{"anything-but":["running"]}]}}}}',
        # A decision whose task-token answer may have been lost with the API.
        '{"eventName":["INSERT","MODIFY"],"dynamodb":{"Keys":{"sk":{"S":[{"prefix":"STEP#"}]}},'
        '"NewImage":{"owed_answer":{"S":[{"exists":true}]}}}}',
    ]


def test_may_answer_task_tokens_of_this_apps_state_machines_only(
    workflows_template: assertions.Template,
) -> None:
    # A decision recorded whose answer the API did not send is sent by the reaction.
    _, properties = _run_events_function(workflows_template)
    statements = policy_statements(workflows_template, properties["Role"]["Fn::GetAtt"][0])
    answers = [s for s in statements if "states:SendTaskSuccess" in as_list(s["Action"])]
    assert answers
    machines = set(resources_of(workflows_template, "AWS::StepFunctions::StateMachine"))
    assert {r["Ref"] for s in answers for r in as_list(s["Resource"])} == machines
    assert all("states:SendTaskFailure" in as_list(s["Action"]) for s in answers)


def test_knows_the_table_and_the_state_machine_prefix(workflows_template: assertions.Template) -> None:
    _, properties = _run_events_function(workflows_template)
    variables = properties["Environment"]["Variables"]
    assert {ENV_RUNS_TABLE, ENV_STATE_MACHINE_ARN_PREFIX} <= set(variables)
    assert "stateMachine:flowdeck-" in str(variables[ENV_STATE_MACHINE_ARN_PREFIX])


def test_may_start_executions_of_this_apps_state_machines_only(
    workflows_template: assertions.Template,
) -> None:
    _, properties = _run_events_function(workflows_template)
    role_id = properties["Role"]["Fn::GetAtt"][0]
    statements = policy_statements(workflows_template, role_id)
    starts = [s for s in statements if "states:StartExecution" in as_list(s["Action"])]
    machines = set(resources_of(workflows_template, "AWS::StepFunctions::StateMachine"))
    assert machines
    assert {r["Ref"] for s in starts for r in as_list(s["Resource"])} == machines
    # On "*" only what takes no resource ARN: stream listing and X-Ray (CDK grants it for PassThrough).
    wildcard = {a for s in statements if "*" in as_list(s["Resource"]) for a in as_list(s["Action"])}
    assert wildcard == {"dynamodb:ListStreams", "xray:PutTraceSegments", "xray:PutTelemetryRecords"}
    writes = [s for s in statements if "dynamodb:UpdateItem" in as_list(s["Action"])]
    assert writes and all("Fn::ImportValue" in str(s["Resource"]) for s in writes)


def test_may_describe_executions_of_this_apps_state_machines_only(
    workflows_template: assertions.Template,
) -> None:
    _, properties = _run_events_function(workflows_template)
    statements = policy_statements(workflows_template, properties["Role"]["Fn::GetAtt"][0])
    describes = [s for s in statements if "states:DescribeExecution" in as_list(s["Action"])]
    resources = [r for s in describes for r in as_list(s["Resource"])]
    assert len(resources) == len(resources_of(workflows_template, "AWS::StepFunctions::StateMachine"))
    machines = set(resources_of(workflows_template, "AWS::StepFunctions::StateMachine"))
    for resource in resources:
        parts = resource["Fn::Join"][1]
        assert ":execution:" in parts and parts[-1] == ":*"
        assert any(ref in str(parts) for ref in machines)


def test_may_write_but_not_read_the_trigger_history(workflows_template: assertions.Template) -> None:
    # Runs Scheduler and EventBridge start are recorded by a reaction (a conditional PutItem).
    _, properties = _run_events_function(workflows_template)
    assert "DeliveryStore" in str(properties["Environment"]["Variables"][ENV_DELIVERIES_TABLE])
    statements = policy_statements(workflows_template, properties["Role"]["Fn::GetAtt"][0])
    on_deliveries = [s for s in statements if "DeliveryStore" in str(s["Resource"])]
    actions = {a for s in on_deliveries for a in as_list(s["Action"])}
    assert "dynamodb:PutItem" in actions
    assert not actions & {"dynamodb:Query", "dynamodb:GetItem", "dynamodb:Scan"}


def test_may_read_the_slack_secret_by_name_only(workflows_template: assertions.Template) -> None:
    # Approvals a finished run left undecided get their Slack message rewritten (the bot token).
    _, properties = _run_events_function(workflows_template)
    assert properties["Environment"]["Variables"]["FLOWDECK_SLACK_SECRET_NAME"] == "flowdeck/slack"
    assert "VpcConfig" not in properties  # outbound HTTPS to Slack without a NAT
    statements = policy_statements(workflows_template, properties["Role"]["Fn::GetAtt"][0])
    reads = [s for s in statements if "secretsmanager:GetSecretValue" in as_list(s["Action"])]
    resources = [r for s in reads for r in as_list(s["Resource"])]
    assert len(resources) == 1
    assert "secret:flowdeck/slack-??????" in str(resources[0])
