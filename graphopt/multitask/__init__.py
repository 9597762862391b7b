"""Multi-task models: merge models that share a backbone into one graph, and split it again.

`merge(models)` computes the models' common part once (cross-model CSE on structural hashes)
and attaches every model's own head; `split(model, outputs)` extracts what some outputs need.
`merge_with_report` also says what was shared (nodes, parameters, MACs).
"""

from graphopt.multitask.errors import MergeError
from graphopt.multitask.merge import merge, merge_with_report, task_table
from graphopt.multitask.report import MergeReport, TaskSummary
from graphopt.multitask.split import split

__all__ = [
    "MergeError",
    "MergeReport",
    "TaskSummary",
    "merge",
    "merge_with_report",
    "split",
    "task_table",
]
