"""``--tasks``: the user's task files, for every command that takes task or mixture names.

``--tasks FILE`` (repeatable, or several after one flag) registers the tasks and mixtures of a
YAML or Python task file (``taskmix.catalog``) besides the default ones. Where a command also
takes task *names* there (``eval``, ``tokenizer train``), an item with a task-file suffix
(``.yaml``, ``.yml``, ``.py``) is a file and any other item a task name.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from taskmix.catalog import KINDS, TaskFile, load_task_files

FILE_HELP = (
    "a task file (YAML or Python) whose tasks and mixtures to use besides the default ones "
    "(repeatable)"
)


def add_task_files_option(parser: argparse.ArgumentParser, *, names: str | None = None) -> None:
    """``--tasks FILE ...``; with ``names`` (what names mean here), ``--tasks NAME|FILE ...``."""
    help_text = FILE_HELP if names is None else f"{names}, or task files ({FILE_HELP})"
    parser.add_argument(
        "--tasks",
        action="extend",
        nargs="+",
        default=[],
        metavar="FILE" if names is None else "NAME|FILE",
        help=help_text,
    )


def split_files_and_names(items: list[str]) -> tuple[list[Path], list[str]]:
    files = [Path(i) for i in items if Path(i).suffix.lower() in KINDS]
    names = [i for i in items if Path(i).suffix.lower() not in KINDS]
    return files, names


def load_cli_tasks(args: argparse.Namespace) -> tuple[list[str], list[TaskFile]]:
    """Register the default tasks and the ``--tasks`` files; returns the task names given and
    the files loaded."""
    files, names = split_files_and_names(list(getattr(args, "tasks", []) or []))
    return names, load_task_files(files)
