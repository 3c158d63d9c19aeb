"""Loading workflow definitions (SPEC §1): every refusal names file, line and field."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from flowdeck.definition import WorkflowDefinition, load_workflows, parse_workflow
from flowdeck.errors import InvalidDefinition

DURATION_HINT = "is not a duration: use e.g. 30s, 15m, 2h or 1h30m"


NAME_HELP = "use 1-64 lowercase letters, digits and -"
STEP_ID_HELP = "use 1-64 lowercase letters, digits, _ and -"


def yaml_text(text: str) -> str:
    """Dedent a test's YAML so that its first line is line 1 of the file."""
    return textwrap.dedent(text).lstrip("\n")


def problems_of(text: str, source: str = "wf.yaml") -> list[str]:
    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow(yaml_text(text), source)
    assert caught.value.code == "InvalidDefinition"
    assert caught.value.status == 422
    return caught.value.problems


def parse(text: str) -> WorkflowDefinition:
    return parse_workflow(yaml_text(text), "wf.yaml")


# -- the file itself ------------------------------------------------------------------------------


def test_yaml_syntax_error_names_the_line():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
           run: make
        """
    )
    assert problems == [
        "wf.yaml:4: YAML syntax error: expected <block end>, but found '<block mapping start>'"
    ]


def test_yaml_tab_indentation_is_a_syntax_error_on_its_line():
    problems = problems_of("name: build\nsteps:\n\t- id: compile\n")
    assert problems == ["wf.yaml:3: YAML syntax error: found character '\\t' that cannot start any token"]


def test_two_yaml_documents_in_one_file_are_refused():
    problems = problems_of("name: a\nsteps: [{id: x, run: echo}]\n---\nname: b\n")
    assert len(problems) == 1
    assert problems[0].startswith("wf.yaml:3: YAML syntax error: ")


@pytest.mark.parametrize("text", ["", "# only a comment\n", "- a\n- b\n", "just some text\n", "42\n"])
def test_top_level_that_is_not_a_mapping_is_refused(text):
    assert problems_of(text) == ["wf.yaml:1: a workflow file holds a mapping with name and steps"]


def test_source_given_by_the_caller_prefixes_every_problem():
    problems = problems_of("name: Bad\nsteps: []\n", source="workflows/deploy.yaml")
    assert problems
    assert all(p.startswith("workflows/deploy.yaml:") for p in problems)


def test_recursive_yaml_alias_is_reported_not_a_crash():
    problems = problems_of("name: loop\nsteps: &s\n  - *s\n")
    assert problems == ["wf.yaml:2: steps[0]: Input should be a valid dictionary or instance of Step"]


# -- name and steps -------------------------------------------------------------------------------


def test_missing_name_is_reported_at_the_top():
    problems = problems_of(
        """
        description: no name here
        steps:
          - id: a
            run: echo
        """
    )
    assert problems == ["wf.yaml:1: name: required field is missing"]


@pytest.mark.parametrize("name", ["Deploy", "prod_deploy", "has space", "a" * 65, "déploy", "''"])
def test_name_outside_the_pattern_is_refused(name):
    problems = problems_of(
        f"""
        description: d
        name: {name}
        steps: [{{id: a, run: echo}}]
        """
    )
    assert problems == [f"wf.yaml:2: name: {str(name).strip(chr(39))!r} is not valid: {NAME_HELP}"]


@pytest.mark.parametrize("name", ["a", "prod-deploy-2", "x" * 64])
def test_name_inside_the_pattern_is_accepted(name):
    assert parse(f"name: {name}\nsteps: [{{id: a, run: echo}}]\n").name == name


def test_missing_steps_is_reported():
    assert problems_of("name: empty\ndescription: nothing to do\n") == [
        "wf.yaml:1: steps: required field is missing"
    ]


def test_empty_steps_is_reported_on_its_line():
    problems = problems_of("name: empty\nsteps: []\n")
    assert len(problems) == 1
    assert problems[0].startswith("wf.yaml:2: steps: List should have at least 1 item")


def test_steps_written_as_a_mapping_is_refused():
    assert problems_of("name: x\nsteps:\n  a: {run: echo}\n") == [
        "wf.yaml:2: steps: Input should be a valid list"
    ]


@pytest.mark.parametrize("step_id", ["Build", "build step", "a.b", "x" * 65])
def test_step_id_outside_the_pattern_is_refused(step_id):
    problems = problems_of(
        f"""
        name: x
        steps:
          - run: echo
            id: "{step_id}"
        """
    )
    assert problems == [f"wf.yaml:4: steps[0].id: {step_id!r} is not valid: {STEP_ID_HELP}"]


# -- unknown and duplicate keys -------------------------------------------------------------------


def test_typo_in_a_step_field_is_an_unknown_field_on_its_line():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
            timeot: 5m
        """
    )
    assert problems == ["wf.yaml:5: steps[0].timeot: unknown field"]


def test_typo_in_a_top_level_field_names_both_the_typo_and_the_missing_field():
    problems = problems_of(
        """
        name: build
        stpes:
          - id: compile
            run: make
        """
    )
    assert sorted(problems) == [
        "wf.yaml:1: steps: required field is missing",
        "wf.yaml:2: stpes: unknown field",
    ]


def test_typo_in_a_nested_field_names_the_full_path():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
            retries:
              max: 2
              intreval: 5s
        """
    )
    assert problems == ["wf.yaml:7: steps[0].retries.intreval: unknown field"]


def test_duplicate_yaml_key_is_reported_where_it_repeats():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
            run: make all
        """
    )
    assert problems == ["wf.yaml:5: steps[0].run: duplicate key"]


def test_duplicate_top_level_key_is_reported():
    assert problems_of("name: a\nname: b\nsteps: [{id: s, run: echo}]\n") == [
        "wf.yaml:2: name: duplicate key"
    ]


# -- the step graph -------------------------------------------------------------------------------


def test_duplicate_step_id_names_the_second_one_and_the_first():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
          - id: compile
            run: make again
        """
    )
    assert problems == ["wf.yaml:5: steps[1].id: duplicate step id 'compile' (also steps[0])"]


def test_unknown_step_in_needs_is_reported():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
          - id: test
            needs: [compile, lint]
            run: make test
        """
    )
    assert problems == ["wf.yaml:6: steps[1].needs: unknown step 'lint'"]


def test_a_bad_field_and_an_unknown_need_are_reported_together():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
            timout: 5m
          - id: test
            needs: [compile, lint]
            run: make test
        """
    )
    assert problems == [
        "wf.yaml:5: steps[0].timout: unknown field",
        "wf.yaml:7: steps[1].needs: unknown step 'lint'",
    ]


def test_step_that_needs_itself_is_reported():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
          - id: test
            needs: [test]
            run: make test
        """
    )
    assert problems == ["wf.yaml:6: steps[1].needs: a step cannot need itself"]


def test_cycle_in_needs_is_reported_with_its_path():
    problems = problems_of(
        """
        name: build
        steps:
          - id: a
            needs: [b]
            run: echo a
          - id: b
            needs: [a]
            run: echo b
        """
    )
    assert problems == ["wf.yaml:4: steps[0].needs: cycle in needs: a -> b -> a"]


def test_longer_cycle_is_reported_in_run_order():
    # c needs b, b needs a, a needs c: a runs before b, b before c, c before a.
    problems = problems_of(
        """
        name: build
        steps:
          - id: start
            run: echo
          - id: a
            needs: [start, c]
            run: echo a
          - id: b
            needs: [a]
            run: echo b
          - id: c
            needs: [b]
            run: echo c
        """
    )
    assert problems == ["wf.yaml:6: steps[1].needs: cycle in needs: a -> b -> c -> a"]


def test_cycle_through_a_default_need_is_reported():
    # b has no needs, so it needs the previous step a, which needs b.
    problems = problems_of(
        """
        name: build
        steps:
          - id: a
            needs: [b]
            run: echo a
          - id: b
            run: echo b
        """
    )
    assert problems == ["wf.yaml:4: steps[0].needs: cycle in needs: a -> b -> a"]


# -- durations ------------------------------------------------------------------------------------


def test_bad_duration_names_file_line_and_field():
    problems = problems_of(
        """
        name: build
        steps:
          - id: compile
            run: make
          - id: test
            run: make test
            timeout: 5x
        """
    )
    assert problems == [f"wf.yaml:7: steps[1].timeout: '5x' {DURATION_HINT}"]


@pytest.mark.parametrize(
    ("written", "shown"),
    [
        ("'30'", "'30'"),
        ("1.5h", "'1.5h'"),
        ("1.5", "1.5"),
        ("m", "'m'"),
        ("''", "''"),
        ("30s15m", "'30s15m'"),
    ],
)
def test_values_that_are_not_durations_are_refused(written, shown):
    problems = problems_of(f"name: x\nsteps:\n  - id: a\n    run: echo\n    timeout: {written}\n")
    assert problems == [f"wf.yaml:5: steps[0].timeout: {shown} {DURATION_HINT}"]


def test_negative_duration_is_refused():
    problems = problems_of("name: x\nsteps:\n  - id: a\n    run: echo\n    timeout: -5\n")
    assert problems == ["wf.yaml:5: steps[0].timeout: a duration cannot be negative"]


@pytest.mark.parametrize(("written", "shown"), [("true", "True"), ("false", "False")])
def test_boolean_is_not_a_duration(written, shown):
    problems = problems_of(f"name: x\nsteps:\n  - id: a\n    run: echo\n    timeout: {written}\n")
    assert problems == [f"wf.yaml:5: steps[0].timeout: {shown} {DURATION_HINT}"]


def test_bad_retry_interval_is_a_bad_duration_of_that_field():
    problems = problems_of(
        "name: x\nsteps:\n  - id: a\n    run: echo\n    retries: {max: 1, interval: soon}\n"
    )
    assert problems == [f"wf.yaml:5: steps[0].retries.interval: 'soon' {DURATION_HINT}"]


@pytest.mark.parametrize(
    ("written", "seconds"),
    [
        ("30s", 30),
        ("15m", 900),
        ("2h", 7200),
        ("1h30m", 5400),
        ("1d", 86400),
        ("1d2h3m4s", 93784),
        ("45", 45),
    ],
)
def test_durations_are_read_as_whole_seconds(written, seconds):
    definition = parse(f"name: x\nsteps:\n  - id: a\n    run: echo\n    timeout: {written}\n")
    assert definition.steps[0].timeout == seconds


# -- step kinds -----------------------------------------------------------------------------------


def test_step_with_run_and_command_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: a
            run: echo hi
            command: [echo, hi]
        """
    )
    assert problems == [
        "wf.yaml:3: steps[0]: a step has exactly one of: run, command, approval, notify (found run, command)"
    ]


def test_step_with_no_kind_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: a
            env: {A: "1"}
        """
    )
    assert problems == [
        "wf.yaml:3: steps[0]: a step has exactly one of: run, command, approval, notify (found none)"
    ]


def test_command_that_is_an_empty_list_is_refused():
    problems = problems_of("name: x\nsteps:\n  - id: a\n    command: []\n")
    assert len(problems) == 1
    assert problems[0].startswith("wf.yaml:4: steps[0].command: List should have at least 1 item")


def test_command_that_is_a_string_is_refused():
    problems = problems_of("name: x\nsteps:\n  - id: a\n    command: echo hi\n")
    assert problems == ["wf.yaml:4: steps[0].command: Input should be a valid list"]


def test_approval_step_with_a_user_parses_with_its_defaults():
    definition = parse(
        "name: x\nsteps:\n  - id: gate\n    approval:\n      approvers: {users: [jane@example.com]}\n"
    )
    gate = definition.step("gate")
    assert gate.kind == "approval"
    assert gate.approval is not None
    assert gate.approval.min_approvals == 1
    assert (gate.approval.timeout, gate.approval.channels) == (86400, ["inbox"])


def test_approval_with_nobody_to_approve_is_refused():
    problems = problems_of("name: x\nsteps:\n  - id: gate\n    approval:\n      message: hi\n")
    assert problems == [
        "wf.yaml:4: steps[0].approval.approvers: name at least one of users, groups or any_member: true"
    ]


def test_approval_needing_more_approvals_than_listed_users_is_refused():
    problems = problems_of(
        "name: x\nsteps:\n  - id: gate\n    approval:\n      approvers: {users: [a@example.com]}\n"
        "      min_approvals: 2\n"
    )
    assert problems == [
        "wf.yaml:6: steps[0].approval.min_approvals: 2 approvals needed but only 1 users listed"
    ]


def test_approval_with_a_group_may_need_more_approvals_than_listed_users():
    parse(
        "name: x\nsteps:\n  - id: gate\n    approval:\n"
        "      approvers: {users: [a@example.com], groups: [ops]}\n"
        "      min_approvals: 3\n"
    )


def test_approval_group_missing_from_teams_yaml_is_refused(tmp_path):
    (tmp_path / "teams.yaml").write_text("teams:\n  platform: [jane@example.com]\n")
    (tmp_path / "wf.yaml").write_text(
        "name: x\nsteps:\n  - id: gate\n    approval:\n      approvers: {groups: [platfrom]}\n"
    )
    with pytest.raises(InvalidDefinition) as caught:
        load_workflows(tmp_path)
    assert caught.value.problems == [
        f"{tmp_path / 'wf.yaml'}:1: steps.0.approval.approvers.groups: group 'platfrom' is not a team in "
        f"{tmp_path / 'teams.yaml'}"
    ]


def test_teams_yaml_is_not_read_as_a_workflow(tmp_path):
    (tmp_path / "teams.yaml").write_text("teams:\n  platform: [jane@example.com]\n")
    (tmp_path / "wf.yaml").write_text(
        "name: x\nsteps:\n  - id: gate\n    approval:\n      approvers: {groups: [platform]}\n"
    )
    assert list(load_workflows(tmp_path)) == ["x"]


def test_pause_on_failure_waits_24_hours_unless_pause_timeout_says_otherwise():
    definition = parse("name: x\nsteps:\n  - id: a\n    run: echo\n    on_failure: pause\n")
    custom = parse(
        "name: x\nsteps:\n  - id: a\n    run: echo\n    on_failure: pause\n    pause_timeout: 1h30m\n"
    )

    assert definition.steps[0].on_failure == "pause"
    assert definition.steps[0].pause_timeout == 24 * 3600
    assert custom.steps[0].pause_timeout == 5400


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0s", "steps[0].pause_timeout: Input should be greater than 0"),
        ("soon", "steps[0].pause_timeout: 'soon' is not a duration: use e.g. 30s, 15m, 2h or 1h30m"),
        ("400d", "steps[0].pause_timeout: Input should be less than or equal to 31536000"),
    ],
)
def test_bad_pause_timeout_is_refused_with_its_line(value: str, problem: str):
    problems = problems_of(f"name: x\nsteps:\n  - id: a\n    run: echo\n    pause_timeout: {value}\n")
    assert problems == [f"wf.yaml:5: {problem}"]


def test_unknown_on_failure_value_is_refused():
    problems = problems_of("name: x\nsteps:\n  - id: a\n    run: echo\n    on_failure: retry\n")
    assert problems == ["wf.yaml:5: steps[0].on_failure: Input should be 'fail', 'pause' or 'continue'"]


# -- resources and retries ------------------------------------------------------------------------


@pytest.mark.parametrize("cpu", [0, 128, 300, 1000, 32768])
def test_cpu_that_is_not_a_fargate_size_is_refused(cpu):
    problems = problems_of(
        f"name: x\nsteps:\n  - id: a\n    run: echo\n    resources: {{cpu: {cpu}, memory: 512}}\n"
    )
    assert problems == [
        f"wf.yaml:5: steps[0].resources: cpu {cpu} is not a Fargate size: "
        "use one of [256, 512, 1024, 2048, 4096, 8192, 16384]"
    ]


@pytest.mark.parametrize(
    ("cpu", "memory", "advice"),
    [
        (256, 4096, "use 512, 1024, 2048 MiB"),
        (256, 1536, "use 512, 1024, 2048 MiB"),  # Fargate has no 1.5 GB size for 0.25 vCPU
        (512, 512, "use 1024, 2048, 3072, 4096 MiB"),
        (1024, 2500, "use 2048..8192 MiB in steps of 1024"),
        (4096, 31744, "use 8192..30720 MiB in steps of 1024"),
        (8192, 17408, "use 16384..61440 MiB in steps of 4096"),
        (16384, 32769, "use 32768..122880 MiB in steps of 8192"),
    ],
)
def test_memory_that_does_not_fit_the_cpu_is_refused(cpu, memory, advice):
    problems = problems_of(
        f"name: x\nsteps:\n  - id: a\n    run: echo\n    resources: {{cpu: {cpu}, memory: {memory}}}\n"
    )
    assert problems == [f"wf.yaml:5: steps[0].resources: memory {memory} does not fit cpu {cpu}: {advice}"]


@pytest.mark.parametrize(
    ("cpu", "memory"),
    [
        (256, 512),
        (256, 2048),
        (512, 3072),
        (1024, 8192),
        (2048, 16384),
        (4096, 30720),
        (8192, 61440),
        (16384, 122880),
    ],
)
def test_every_fargate_combination_is_accepted(cpu, memory):
    definition = parse(
        f"name: x\nsteps:\n  - id: a\n    run: echo\n    resources: {{cpu: {cpu}, memory: {memory}}}\n"
    )
    assert (definition.steps[0].resources.cpu, definition.steps[0].resources.memory) == (cpu, memory)


@pytest.mark.parametrize(
    ("retries", "problem"),
    [
        ("{max: 11}", "steps[0].retries.max: Input should be less than or equal to 10"),
        ("{max: -1}", "steps[0].retries.max: Input should be greater than or equal to 0"),
        ("{max: 1, backoff: 0.5}", "steps[0].retries.backoff: Input should be greater than or equal to 1"),
        ("{max: 1, backoff: 11}", "steps[0].retries.backoff: Input should be less than or equal to 10"),
    ],
)
def test_retries_out_of_range_are_refused(retries, problem):
    problems = problems_of(f"name: x\nsteps:\n  - id: a\n    run: echo\n    retries: {retries}\n")
    assert problems == [f"wf.yaml:5: {problem}"]


def test_heartbeat_below_five_seconds_is_refused():
    problems = problems_of("name: x\nruntime_config: {heartbeat_seconds: 1}\nsteps: [{id: a, run: echo}]\n")
    assert problems == [
        "wf.yaml:2: runtime_config.heartbeat_seconds: Input should be greater than or equal to 5"
    ]


# -- artifacts ------------------------------------------------------------------------------------


@pytest.mark.parametrize("item", ["tfplan", ":tfplan", "plan:"])
def test_artifact_download_that_is_not_step_colon_path_is_refused(item):
    problems = problems_of(
        f"""
        name: x
        steps:
          - id: plan
            run: echo
          - id: apply
            run: echo
            artifacts: {{download: ["{item}"]}}
        """
    )
    assert problems == [f"wf.yaml:7: steps[1].artifacts.download: '{item}' is not step:path"]


def test_artifact_download_from_a_step_that_does_not_run_before_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: plan
            run: echo
          - id: apply
            needs: []
            run: echo
            artifacts:
              download: ["plan:tfplan"]
        """
    )
    assert problems == ["wf.yaml:9: steps[1].artifacts.download[0]: step 'plan' does not run before 'apply'"]


def test_artifact_download_from_a_later_step_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: apply
            run: echo
            artifacts: {download: ["ok:x", "plan:tfplan"]}
          - id: plan
            run: echo
          - id: ok
            needs: []
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:5: steps[0].artifacts.download[0]: step 'ok' does not run before 'apply'",
        "wf.yaml:5: steps[0].artifacts.download[1]: step 'plan' does not run before 'apply'",
    ]


def test_artifact_download_from_an_ancestor_is_accepted():
    definition = parse(
        """
        name: x
        steps:
          - id: plan
            run: echo
          - id: check
            run: echo
          - id: apply
            run: echo
            artifacts: {download: ["plan:tfplan"]}
        """
    )
    assert definition.steps[2].artifacts.download == ["plan:tfplan"]


# -- conditions and templates ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("condition", "message"),
    [
        ("steps.plan.outputs.add ==", "not a valid condition: invalid syntax"),
        ("env == 'prod'", "unknown name 'env': conditions read steps, inputs and run"),
        ("len(inputs.items) > 0", "function calls are not allowed in conditions"),
        ("inputs.name.upper() == 'X'", "function calls are not allowed in conditions"),
        ("steps.lint.outputs.ok == 'yes'", "unknown step 'lint'"),
    ],
)
def test_bad_if_is_refused_with_the_reason(condition, message):
    problems = problems_of(
        f"""
        name: x
        steps:
          - id: plan
            run: echo
          - id: apply
            if: "{condition}"
            run: echo
        """
    )
    assert problems == [f"wf.yaml:6: steps[1].if: {message}"]


def test_if_reading_a_step_that_is_not_upstream_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: plan
            run: echo
          - id: apply
            needs: []
            if: "steps.plan.outputs.add != ''"
            run: echo
        """
    )
    assert problems == ["wf.yaml:7: steps[1].if: step 'plan' does not run before 'apply': add it to needs"]


def test_if_reading_a_dashed_step_id_by_subscript_is_checked_too():
    problems = problems_of(
        """
        name: x
        steps:
          - id: make-plan
            run: echo
          - id: apply
            needs: []
            if: "steps['make-plan'].outputs.add != ''"
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:7: steps[1].if: step 'make-plan' does not run before 'apply': add it to needs"
    ]


def test_if_reading_an_indirect_ancestor_is_accepted():
    definition = parse(
        """
        name: x
        steps:
          - id: plan
            run: echo
          - id: check
            run: echo
          - id: apply
            if: "steps.plan.outputs.add != '' and inputs.env in ['prod', 'stage'] and not run.id == ''"
            run: echo
        """
    )
    assert definition.steps[2].if_ is not None


def test_template_syntax_error_in_notify_message_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: tell
            notify:
              slack: "#deploys"
              message: "Deployed {{ run.id "
        """
    )
    assert problems == [
        "wf.yaml:6: steps[0].notify.message: template error: "
        "unexpected end of template, expected 'end of print statement'."
    ]


def test_template_syntax_error_in_approval_message_is_refused():
    problems = problems_of(
        """
        name: x
        steps:
          - id: gate
            approval:
              approvers: {users: [jane@example.com]}
              message: "{% if %}"
        """
    )
    assert len(problems) == 1
    assert problems[0].startswith("wf.yaml:6: steps[0].approval.message: template error: ")


# -- inputs and triggers --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("{type: integer, default: two}", "expected integer, got str"),
        ("{type: integer, default: true}", "expected integer, got bool"),
        ("{type: integer, default: 1.5}", "expected integer, got float"),
        ("{type: number, default: false}", "expected number, got bool"),
        ("{type: boolean, default: 'yes'}", "expected boolean, got str"),
        ("{type: string, default: 3}", "expected string, got int"),
        ("{type: array, default: {a: 1}}", "expected array, got dict"),
        ("{type: object, default: [1]}", "expected object, got list"),
        ("{type: string, enum: [a, b], default: c}", "must be one of ['a', 'b']"),
    ],
)
def test_input_default_of_the_wrong_type_is_refused(spec, message):
    problems = problems_of(f"name: x\ninputs:\n  replicas: {spec}\nsteps: [{{id: a, run: echo}}]\n")
    assert problems == [f"wf.yaml:3: inputs.replicas.default: {message}"]


def test_unknown_input_type_is_refused():
    problems = problems_of("name: x\ninputs:\n  n: {type: int}\nsteps: [{id: a, run: echo}]\n")
    assert problems == [
        "wf.yaml:3: inputs.n.type: "
        "Input should be 'string', 'integer', 'number', 'boolean', 'object' or 'array'"
    ]


@pytest.mark.parametrize(
    "trigger",
    [
        "{schedule: {cron: 'cron(0 6 * * ? *)'}, webhook: {secret: s}}",
        "{git: {repo: acme/infra}, event: {pattern: {source: [acme]}}}",
        "{}",
    ],
)
def test_trigger_with_other_than_one_kind_is_refused(trigger):
    problems = problems_of(f"name: x\ntriggers:\n  - {trigger}\nsteps: [{{id: a, run: echo}}]\n")
    assert problems == [
        "wf.yaml:3: triggers[0]: a trigger has exactly one of: manual, schedule, webhook, git, event"
    ]


# -- several problems at once ---------------------------------------------------------------------


def test_several_field_problems_are_reported_together():
    problems = problems_of(
        """
        name: Build
        steps:
          - id: compile
            run: make
            timeout: 5x
            retries: {max: 99}
          - id: test
            run: make test
            resources: {cpu: 300}
        """
    )
    assert sorted(problems) == sorted(
        [
            f"wf.yaml:1: name: 'Build' is not valid: {NAME_HELP}",
            f"wf.yaml:5: steps[0].timeout: '5x' {DURATION_HINT}",
            "wf.yaml:6: steps[0].retries.max: Input should be less than or equal to 10",
            "wf.yaml:9: steps[1].resources: cpu 300 is not a Fargate size: "
            "use one of [256, 512, 1024, 2048, 4096, 8192, 16384]",
        ]
    )


def test_several_graph_problems_are_reported_together():
    problems = problems_of(
        """
        name: x
        inputs:
          replicas: {type: integer, default: two}
        steps:
          - id: plan
            run: echo
          - id: apply
            needs: []
            if: "steps.plan.outputs.add != ''"
            run: echo
            on_failure: pause
          - id: tell
            notify: {message: "{{ oops"}
        """
    )
    assert problems[0] == "wf.yaml:3: inputs.replicas.default: expected integer, got str"
    assert problems[1:] == [
        "wf.yaml:9: steps[1].if: step 'plan' does not run before 'apply': add it to needs",
        "wf.yaml:13: steps[2].notify.message: template error: unexpected end of template, "
        "expected 'end of print statement'.",
    ]


def test_bad_input_default_does_not_hide_a_cycle():
    problems = problems_of(
        """
        name: x
        inputs:
          replicas: {type: integer, default: two}
        steps:
          - id: a
            needs: [b]
            run: echo
          - id: b
            needs: [a]
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:3: inputs.replicas.default: expected integer, got str",
        "wf.yaml:6: steps[0].needs: cycle in needs: a -> b -> a",
    ]


def test_unknown_needs_are_all_reported_before_graph_checks():
    problems = problems_of(
        """
        name: x
        steps:
          - id: a
            needs: [ghost]
            run: echo
          - id: b
            needs: [b, phantom]
            run: echo
        """
    )
    assert problems == [
        "wf.yaml:4: steps[0].needs: unknown step 'ghost'",
        "wf.yaml:7: steps[1].needs: a step cannot need itself",
        "wf.yaml:7: steps[1].needs: unknown step 'phantom'",
    ]


def test_invalid_definition_message_joins_every_problem():
    with pytest.raises(InvalidDefinition) as caught:
        parse_workflow("name: Bad\nsteps: []\n", "wf.yaml")
    assert caught.value.message == "; ".join(caught.value.problems)
    assert len(caught.value.problems) == 2


# -- folders --------------------------------------------------------------------------------------


def write(folder: Path, filename: str, text: str) -> None:
    (folder / filename).write_text(yaml_text(text), encoding="utf-8")


def test_load_workflows_refuses_two_files_with_the_same_name(tmp_path):
    write(tmp_path, "a.yaml", "name: deploy\nsteps: [{id: a, run: echo}]\n")
    write(tmp_path, "b.yml", "name: deploy\nsteps: [{id: b, run: echo}]\n")
    with pytest.raises(InvalidDefinition) as caught:
        load_workflows(tmp_path)
    assert caught.value.problems == [
        f"{tmp_path / 'b.yml'}:1: name: workflow name 'deploy' is already used by {tmp_path / 'a.yaml'}"
    ]


def test_load_workflows_reports_the_problems_of_every_file(tmp_path):
    write(tmp_path, "a.yaml", "name: A\nsteps: [{id: a, run: echo}]\n")
    write(tmp_path, "b.yaml", "name: b\nsteps: [{id: b, run: echo, timeout: 5x}]\n")
    write(tmp_path, "c.yaml", "name: c\nsteps: [{id: c, run: echo}]\n")
    with pytest.raises(InvalidDefinition) as caught:
        load_workflows(tmp_path)
    assert caught.value.problems == [
        f"{tmp_path / 'a.yaml'}:1: name: 'A' is not valid: {NAME_HELP}",
        f"{tmp_path / 'b.yaml'}:2: steps[0].timeout: '5x' {DURATION_HINT}",
    ]


def test_load_workflows_returns_definitions_by_name_and_ignores_other_files(tmp_path):
    write(tmp_path, "one.yaml", "name: first\nsteps: [{id: a, run: echo}]\n")
    write(tmp_path, "two.yml", "name: second\nsteps: [{id: a, run: echo}]\n")
    write(tmp_path, "notes.txt", "not a workflow")
    found = load_workflows(tmp_path)
    assert sorted(found) == ["first", "second"]
    assert found["second"].steps[0].id == "a"


def test_load_workflows_reports_an_unreadable_file(tmp_path):
    (tmp_path / "bad.yaml").write_bytes(b"name: \xff\xfe\n")
    with pytest.raises(InvalidDefinition) as caught:
        load_workflows(tmp_path)
    assert caught.value.problems == [f"{tmp_path / 'bad.yaml'}:1: cannot read the file: UnicodeDecodeError"]


# -- valid definitions ----------------------------------------------------------------------------

SPEC_LIKE = """
name: production-deploy
description: Plan and apply infrastructure changes
inputs:
  environment: {type: string, default: production, enum: [production, staging]}
  replicas: {type: integer, default: 2}
  dry_run: {type: boolean, default: false}
triggers:
  - schedule: {cron: "cron(0 6 * * ? *)", timezone: UTC, inputs: {}}
  - webhook: {secret: deploy-hook}
  - git: {repo: acme/infra, branches: [main]}
  - event: {pattern: {source: [acme.incidents]}, trigger: incident}
runtime_config:
  mode: pool
  retention_hours: 48
  concurrency: {max_runs: 1, on_limit: reject}
  max_cost_usd: 5.0
steps:
  - id: plan
    run: ./scripts/plan.sh
    image: public.ecr.aws/docker/library/python:3.12-slim
    resources: {cpu: 512, memory: 2048}
    env: {TF_IN_AUTOMATION: "1", RETRIES: 3, VERBOSE: true, RATIO: 0.5}
    timeout: 15m
    retries: {max: 2, interval: 5s, backoff: 2.0}
    artifacts: {upload: ["tfplan", "reports/*.xml"]}
    allow_skip: true
  - id: lint
    needs: []
    command: [make, lint]
    on_failure: continue
  - id: apply
    needs: [plan, lint]
    run: ./scripts/apply.sh
    artifacts: {download: ["plan:tfplan"]}
    cleanup: ./scripts/destroy.sh
  - id: health
    if: "steps.apply.outputs.endpoint != ''"
    run: curl -fsS "$ENDPOINT/health"
  - id: notify
    notify:
      slack: "#deploys"
      email: [ops@example.com]
      message: "Deployed {{ run.id }} to {{ inputs.environment }}"
"""


def test_spec_like_definition_parses_with_every_field():
    definition = parse(SPEC_LIKE)
    assert definition.name == "production-deploy"
    assert [s.id for s in definition.steps] == ["plan", "lint", "apply", "health", "notify"]
    assert [s.kind for s in definition.steps] == ["run", "run", "run", "run", "notify"]
    plan = definition.step("plan")
    assert plan.timeout == 900
    assert (plan.retries.max, plan.retries.interval, plan.retries.backoff) == (2, 5, 2.0)
    assert (plan.resources.cpu, plan.resources.memory) == (512, 2048)
    assert plan.allow_skip is True
    assert definition.step("lint").command == ["make", "lint"]
    assert definition.step("lint").on_failure == "continue"
    assert definition.step("health").if_ == "steps.apply.outputs.endpoint != ''"
    assert definition.step("notify").notify is not None
    assert definition.runtime_config.concurrency.on_limit == "reject"
    assert definition.runtime_config.heartbeat_seconds == 30
    assert [t.event.trigger for t in definition.triggers if t.event] == ["incident"]
    assert definition.input_defaults() == {"environment": "production", "replicas": 2, "dry_run": False}


def test_env_values_are_coerced_to_strings():
    env = parse(SPEC_LIKE).step("plan").env
    assert env == {"TF_IN_AUTOMATION": "1", "RETRIES": "3", "VERBOSE": "true", "RATIO": "0.5"}
    assert all(isinstance(v, str) for v in env.values())


def test_env_value_that_is_a_list_is_refused():
    problems = problems_of("name: x\nsteps:\n  - id: a\n    run: echo\n    env: {A: [1, 2]}\n")
    assert problems == ["wf.yaml:5: steps[0].env.A: environment values are strings, numbers or booleans"]


def test_dependencies_default_to_the_previous_step():
    assert parse(SPEC_LIKE).dependencies() == {
        "plan": [],
        "lint": [],
        "apply": ["plan", "lint"],
        "health": ["apply"],
        "notify": ["health"],
    }


def test_defaults_of_a_minimal_step():
    definition = parse("name: x\nsteps:\n  - id: a\n    run: echo\n  - id: b\n    run: echo\n")
    step = definition.steps[1]
    assert definition.dependencies() == {"a": [], "b": ["a"]}
    assert step.needs is None
    assert step.timeout is None
    assert (step.retries.max, step.retries.interval, step.retries.backoff) == (0, 5, 2.0)
    assert (step.resources.cpu, step.resources.memory) == (256, 512)
    assert step.on_failure == "fail"
    assert step.env == {}
    assert definition.runtime_config.mode == "pool"
    assert definition.runtime_config.retention_hours == 24


def test_explicit_empty_needs_make_a_step_independent():
    definition = parse("name: x\nsteps:\n  - id: a\n    run: echo\n  - id: b\n    needs: []\n    run: echo\n")
    assert definition.dependencies() == {"a": [], "b": []}


def test_needs_may_name_a_step_written_later():
    definition = parse(
        """
        name: x
        steps:
          - id: deploy
            needs: [build]
            run: echo
          - id: build
            needs: []
            run: echo
        """
    )
    assert definition.dependencies() == {"deploy": ["build"], "build": []}


def test_definition_is_frozen():
    definition = parse("name: x\nsteps: [{id: a, run: echo}]\n")
    with pytest.raises(ValueError, match="frozen"):
        definition.steps[0].run = "rm -rf /"  # type: ignore[misc]


# -- names that end up as keys in the compiled ASL --------------------------------------------------


@pytest.mark.parametrize("name", ["bad.$", "has-dash", "1st", "a b"])
def test_input_name_must_be_an_identifier(name):
    problems = problems_of(f'name: x\ninputs:\n  "{name}": {{type: string}}\nsteps: [{{id: a, run: echo}}]\n')
    assert problems == [
        f"wf.yaml:3: inputs.{name}: {name!r} is not valid: "
        "an input name is a letter or _ then letters, digits and _ (at most 64)"
    ]


@pytest.mark.parametrize("name", ["A-B", "PATH.$", "9X"])
def test_env_name_must_be_an_identifier(name):
    problems = problems_of(f'name: x\nsteps:\n  - id: a\n    run: echo\n    env: {{"{name}": "1"}}\n')
    assert problems == [
        f"wf.yaml:5: steps[0].env.{name}: {name!r} is not valid: "
        "an environment variable name is a letter or _ then letters, digits and _"
    ]


@pytest.mark.parametrize("timeout", ["0s", "0"])
def test_zero_timeout_is_refused(timeout):
    problems = problems_of(f"name: x\nsteps: [{{id: a, run: echo, timeout: {timeout}}}]\n")
    assert problems == ["wf.yaml:2: steps[0].timeout: Input should be greater than 0"]
