"""Tasks and their data: task specs (TOML), the embedded `mni-phantom` source, cached splits.

    spec = get_task("phantom-2d")
    data = build_task_data(spec, size=64, cache_dir=Path(".cache/data"))
    data.train.t1  # float32 [N, 1, 64, 64] in [-1, 1], paired with data.train.t2
"""

from datasets.anatomy import WorkingGrid, working_grid
from datasets.build import SOURCES, Split, TaskData, build_task_data, cache_path
from datasets.phantom import GENERATOR_VERSION, LABELS, Subject, render_subject
from datasets.spec import Slicing, TaskSpec, get_task, list_tasks, source_task

__all__ = [
    "GENERATOR_VERSION",
    "LABELS",
    "SOURCES",
    "Slicing",
    "Split",
    "Subject",
    "TaskData",
    "TaskSpec",
    "WorkingGrid",
    "build_task_data",
    "cache_path",
    "get_task",
    "list_tasks",
    "render_subject",
    "source_task",
    "working_grid",
]
