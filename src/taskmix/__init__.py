"""taskmix: multi-task text-to-text transfer learning in PyTorch."""

from taskmix.data.registry import MixtureRegistry, TaskRegistry, get_mixture, get_task

__version__ = "0.1.0"

__all__ = ["MixtureRegistry", "TaskRegistry", "__version__", "get_mixture", "get_task"]
