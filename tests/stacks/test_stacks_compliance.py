"""cdk-nag (AwsSolutions) and cfn-lint over the synthesized app."""

from __future__ import annotations

from pathlib import Path

import pytest
from aws_cdk.assertions import Annotations, Match
from cfnlint.api import ManualArgs, lint_file
from stack_helpers import STACK_NAMES, Synthesized

# cfn-lint warnings accepted on purpose, each with the reason a reviewer can check.
ACCEPTED_CFN_LINT_WARNINGS = {
    "W3005": "CDK adds an explicit DependsOn on a role next to a GetAtt of it (so the role's default "
    "policy exists before first use); redundant for CloudFormation, harmless.",
}
LINT_REGIONS = ["us-east-1", "eu-west-1"]


@pytest.mark.parametrize("stack_name", STACK_NAMES)
def test_no_unsuppressed_aws_solutions_findings(synthesized: Synthesized, stack_name: str) -> None:
    annotations = Annotations.from_stack(synthesized.stacks[stack_name])
    nag = Match.string_like_regexp("AwsSolutions-.*")

    errors = annotations.find_error("*", nag)
    warnings = annotations.find_warning("*", nag)

    assert [f"{e.id}: {e.entry.data}" for e in errors] == []
    assert [f"{w.id}: {w.entry.data}" for w in warnings] == []


def test_no_cdk_warnings_or_errors(synthesized: Synthesized) -> None:
    for stack_name in STACK_NAMES:
        annotations = Annotations.from_stack(synthesized.stacks[stack_name])
        messages = [
            *annotations.find_error("*", Match.any_value()),
            *annotations.find_warning("*", Match.any_value()),
        ]
        assert [f"{m.id}: {m.entry.data}" for m in messages] == [], stack_name


def test_templates_pass_cfn_lint(synthesized: Synthesized) -> None:
    templates = [Path(stack.template_full_path) for stack in synthesized.assembly.stacks]
    assert len(templates) == len(STACK_NAMES)

    problems = [
        f"{template.name}: {match.rule.id} {match.message} (line {match.linenumber})"
        for template in templates
        for match in lint_file(template, ManualArgs(regions=LINT_REGIONS))
        if match.rule.id not in ACCEPTED_CFN_LINT_WARNINGS or not match.rule.id.startswith("W")
    ]

    assert problems == []
