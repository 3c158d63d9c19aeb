"""Step `if` conditions and message templates."""

from __future__ import annotations

import pytest

from flowdeck.expressions import check_template, condition_references, evaluate_condition, render_template

CONTEXT = {
    "steps": {
        "plan": {"outputs": {"add": "3", "changes": 0, "ok": True, "regions": ["eu", "us"]}},
        "make-image": {"outputs": {"tag": "v1"}},
        "lint": {"Error": "StepFailed", "Cause": "exit 1"},  # failed with on_failure: continue
    },
    "inputs": {"environment": "production", "replicas": 2, "targets": ["web", "api"]},
    "run": {"id": "run-123", "trigger": "manual"},
}


# -- conditions -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("steps.plan.outputs.add == '3'", True),
        ("steps.plan.outputs.add != '3'", False),
        ("steps.plan.outputs.changes > 0", False),
        ("steps.plan.outputs.changes == 0", True),
        ("steps.plan.outputs.ok", True),
        ("steps.plan.outputs.ok == True", True),
        ("inputs.replicas >= 2", True),
        ("inputs.environment == 'staging'", False),
        ("run.trigger == 'manual'", True),
        ("steps['make-image'].outputs.tag == 'v1'", True),
    ],
)
def test_condition_reads_outputs_inputs_and_run(expression, expected):
    assert evaluate_condition(expression, CONTEXT) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "steps.plan.outputs.missing == ''",
        "not steps.plan.outputs.missing",
        "inputs.missing == ''",
        "run.missing == ''",
        "steps.ghost.outputs.endpoint == ''",  # skipped or not run: no record at all
        "steps.lint.outputs.endpoint == ''",  # failed and continued: a record without outputs
        "steps.plan.missing.deeper == ''",
    ],
)
def test_missing_output_reads_as_empty_string(expression):
    assert evaluate_condition(expression, CONTEXT) is True


def test_spec_health_check_condition_skips_when_apply_left_no_endpoint():
    condition = "steps.apply.outputs.endpoint != ''"
    assert evaluate_condition(condition, CONTEXT) is False
    with_endpoint = {**CONTEXT, "steps": {"apply": {"outputs": {"endpoint": "https://x"}}}}
    assert evaluate_condition(condition, with_endpoint) is True


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("steps.plan.outputs.add == '3' and inputs.replicas == 2", True),
        ("steps.plan.outputs.add == '3' and inputs.replicas == 3", False),
        ("steps.plan.outputs.add == '4' or inputs.replicas == 2", True),
        ("steps.plan.outputs.add == '4' or inputs.replicas == 3", False),
        ("not steps.plan.outputs.ok", False),
        ("not (steps.plan.outputs.add == '4')", True),
        ("inputs.replicas > 1 and not steps.plan.outputs.changes", True),
    ],
)
def test_condition_combines_with_and_or_not(expression, expected):
    assert evaluate_condition(expression, CONTEXT) is expected


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("'web' in inputs.targets", True),
        ("'db' in inputs.targets", False),
        ("'db' not in inputs.targets", True),
        ("inputs.environment in ['production', 'staging']", True),
        ("inputs.environment in ('dev', 'staging')", False),
        ("'eu' in steps.plan.outputs.regions", True),
        ("'prod' in inputs.environment", True),
    ],
)
def test_condition_supports_in(expression, expected):
    assert evaluate_condition(expression, CONTEXT) is expected


@pytest.mark.parametrize(
    "expression",
    [
        "steps.plan.outputs.add + 1 > 0",
        "inputs.replicas / 0",
        "steps.plan.outputs.__class__",
        "inputs.replicas >",
    ],
)
def test_condition_that_cannot_be_evaluated_raises_value_error_naming_it(expression):
    with pytest.raises(ValueError, match=r"^condition .* failed: "):
        evaluate_condition(expression, CONTEXT)


@pytest.mark.parametrize(
    ("expression", "steps"),
    [
        ("steps.plan.outputs.add != ''", {"plan"}),
        ("steps.a.outputs.x == '1' or steps.b.outputs.y and inputs.z", {"a", "b"}),
        ("steps['make-image'].outputs.tag == 'v1'", {"make-image"}),
        ("inputs.environment == 'production' and run.id != ''", set()),
        ("True", set()),
    ],
)
def test_condition_references_are_the_steps_it_reads(expression, steps):
    assert condition_references(expression) == steps


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("steps.a.outputs.x ==", "not a valid condition: invalid syntax"),
        ("environment == 'prod'", "unknown name 'environment': conditions read steps, inputs and run"),
        ("steps.make-image.outputs.tag", "unknown name 'image': conditions read steps, inputs and run"),
        ("len(inputs.targets) > 1", "function calls are not allowed in conditions"),
        ("inputs.x.lower() == 'a'", "function calls are not allowed in conditions"),
        ("[t for t in inputs.targets]", "unknown name 't': conditions read steps, inputs and run"),
    ],
)
def test_condition_references_refuses_what_the_runner_cannot_evaluate(expression, message):
    with pytest.raises(ValueError) as caught:
        condition_references(expression)
    assert str(caught.value) == message


# -- templates ------------------------------------------------------------------------------------


def test_template_renders_inputs_steps_and_run():
    text = "Apply {{ steps.plan.outputs.add }} additions to {{ inputs.environment }} in {{ run.id }}"
    assert render_template(text, CONTEXT) == "Apply 3 additions to production in run-123"


def test_template_reads_dashed_step_ids_by_subscript():
    assert render_template("{{ steps['make-image'].outputs.tag }}", CONTEXT) == "v1"


def test_template_supports_filters_and_control_flow():
    text = "{{ inputs.targets | join(', ') }}{% if inputs.replicas > 1 %} x{{ inputs.replicas }}{% endif %}"
    assert render_template(text, CONTEXT) == "web, api x2"


@pytest.mark.parametrize(
    "text",
    [
        "[{{ nope }}]",
        "[{{ inputs.missing }}]",
        "[{{ steps.plan.outputs.missing }}]",
        "[{{ steps.ghost.outputs.endpoint }}]",
        "[{{ steps.lint.outputs.endpoint }}]",
    ],
)
def test_template_renders_unknown_names_as_empty(text):
    assert render_template(text, CONTEXT) == "[]"


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("{{ 1 / 0 }}", "division by zero"),
        ("{{ unclosed", "unexpected end of template"),
        ("{{ nope.deeper.still }}", "'nope' is undefined"),
        ("{{ inputs.__class__.__mro__ }}", "unsafe"),
    ],
)
def test_template_never_raises_and_shows_what_went_wrong(text, error):
    rendered = render_template(text, CONTEXT)
    assert rendered.startswith(f"{text} [template error: ")
    assert error in rendered


def test_template_keeps_text_as_written():
    assert render_template("<b>{{ inputs.environment }}</b>\n", CONTEXT) == "<b>production</b>\n"


def test_check_template_accepts_valid_templates():
    check_template("Deployed {{ run.id }} {% if inputs.x %}yes{% endif %}")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("{{ run.id ", "template error: unexpected end of template, expected 'end of print statement'."),
        (
            "{% if x %}",
            "template error: Unexpected end of template. Jinja was looking for the following tags: "
            "'elif' or 'else' or 'endif'. The innermost block that needs to be closed is 'if'.",
        ),
        ("{% endfor %}", "template error: Encountered unknown tag 'endfor'."),
    ],
)
def test_check_template_refuses_syntax_errors(text, message):
    with pytest.raises(ValueError) as caught:
        check_template(text)
    assert str(caught.value) == message
