"""The compiler: a workflow definition -> Amazon States Language, used by CDK and the local stack alike."""

from statemachines.compiler import compile_workflow, render_definition
from statemachines.layout import Parallel, layout

__all__ = ["Parallel", "compile_workflow", "layout", "render_definition"]
