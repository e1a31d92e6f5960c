"""taskmix: multi-task text-to-text transfer learning in PyTorch."""

__version__ = "0.1.0"
