"""taskmix: multi-task text-to-text transfer learning in PyTorch.

This module is the convenience facade (it sits above every package, see docs/architecture.md):

    import taskmix
    taskmix.load_task_files(["my_tasks.yaml"])   # the default tasks, then yours
    taskmix.get_task("my_task")
"""

from taskmix.catalog import load_task_files
from taskmix.data.registry import MixtureRegistry, TaskRegistry, get_mixture, get_task

__version__ = "0.1.0"

__all__ = [
    "MixtureRegistry",
    "TaskRegistry",
    "__version__",
    "get_mixture",
    "get_task",
    "load_task_files",
]
