"""Workflow definitions: the YAML contract of SPEC §1, its models, loading and validation."""

from flowdeck.definition.loader import load_workflow, load_workflows, parse_workflow
from flowdeck.definition.models import Step, WorkflowDefinition

__all__ = ["Step", "WorkflowDefinition", "load_workflow", "load_workflows", "parse_workflow"]
