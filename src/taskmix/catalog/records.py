"""A run's task files, kept with the run: ``taskmix eval RUN`` works months later, without flags.

When a run starts, every task file of its config is copied into ``RUN_DIR/tasks/`` beside a
``manifest.json`` that records, per file, where the original was, its SHA-256, the tasks and
mixtures it defined, and the size and modification time of each data file behind those tasks.
Loading the run's tasks later (``load_run_tasks``) then

- uses the original file where it still is and is unchanged, else the run's copy (relative
  data paths resolve against the original's folder either way);
- refuses a task file or data file that changed since, naming the task and what changed,
  unless the caller accepts changes (``--accept-changed-tasks``: the current files are used);
- refuses a run whose copy of a task file, or a data file, is gone, naming it.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from taskmix.catalog import TaskFile, load_task_file
from taskmix.data.registry import MixtureRegistry, Registry, TaskRegistry
from taskmix.errors import ConfigError

RECORD_DIR = "tasks"
MANIFEST = "manifest.json"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _stat(path: Path) -> dict[str, Any]:
    info = path.stat()
    return {"size": info.st_size, "mtime": info.st_mtime}


def _when(mtime: float) -> str:
    return datetime.datetime.fromtimestamp(mtime).isoformat(timespec="seconds")


def describe(file: TaskFile) -> dict[str, Any]:
    """The manifest entry of a loaded task file."""
    data = {name: {str(p): _stat(p) for p in paths} for name, paths in file.data_files.items()}
    return {
        "original": str(file.path),
        "kind": file.kind,
        "sha256": file.sha256,
        "tasks": file.tasks,
        "mixtures": file.mixtures,
        "data_files": data,
    }


def read_manifest(run_dir: Path) -> list[dict[str, Any]] | None:
    path = Path(run_dir) / RECORD_DIR / MANIFEST
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ConfigError(f"{path}: unreadable record of the run's task files ({err})") from None


def record_task_files(
    run_dir: Path, files: list[TaskFile], *, accept_changes: bool = False
) -> None:
    """Copy ``files`` into ``RUN_DIR/tasks`` with their manifest. A run that recorded its task
    files before (a resume) must find them unchanged, unless ``accept_changes``."""
    run_dir = Path(run_dir)
    entries = [describe(f) for f in files]
    old = read_manifest(run_dir)
    if old is not None and not accept_changes:
        problems = _compare(old, entries)
        if problems:
            raise ConfigError(
                f"{run_dir}: the task files changed since the run started:\n  "
                + "\n  ".join(problems)
                + "\nresume with the files it was trained with, or pass --accept-changed-tasks"
            )
    folder = run_dir / RECORD_DIR
    folder.mkdir(parents=True, exist_ok=True)
    for i, (file, entry) in enumerate(zip(files, entries, strict=True)):
        entry["copy"] = f"{i:02d}-{file.path.name}"
        _atomic_copy(file.path, folder / entry["copy"])
    text = json.dumps({"files": entries}, indent=1) + "\n"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{MANIFEST}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, folder / MANIFEST)


def _atomic_copy(source: Path, target: Path) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    os.close(fd)
    shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _compare(old: list[dict[str, Any]], new: list[dict[str, Any]]) -> list[str]:
    by_original = {e["original"]: e for e in new}
    problems = []
    for entry in old:
        now = by_original.get(entry["original"])
        if now is None:
            problems.append(f"{entry['original']} (tasks {entry['tasks']}) is no longer used")
        elif now["sha256"] != entry["sha256"]:
            problems.append(f"{_names(entry)}: task file {entry['original']} was edited")
        else:
            problems += _data_changes(entry)
    return problems


def _names(entry: dict[str, Any]) -> str:
    """``task a, b and mixture m``: what a task file defines, for messages."""
    parts = [
        f"{kind}{'s' if len(names) > 1 else ''} {', '.join(names)}"
        for kind, names in (("task", entry["tasks"]), ("mixture", entry["mixtures"]))
        if names
    ]
    return " and ".join(parts) or "no tasks"


def _data_changes(entry: dict[str, Any]) -> list[str]:
    """What happened to the recorded data files since: gone, resized or rewritten."""
    problems = []
    for task, files in entry["data_files"].items():
        for path, was in files.items():
            file = Path(path)
            if not file.is_file():
                problems.append(f"task {task}: data file {path} is gone")
                continue
            now = _stat(file)
            if now["size"] != was["size"]:
                problems.append(
                    f"task {task}: data file {path} changed size ({was['size']} -> "
                    f"{now['size']} bytes)"
                )
            elif now["mtime"] != was["mtime"]:
                problems.append(
                    f"task {task}: data file {path} was modified ({_when(was['mtime'])} -> "
                    f"{_when(now['mtime'])})"
                )
    return problems


def load_run_tasks(
    run_dir: Path,
    *,
    accept_changes: bool = False,
    task_registry: Registry = TaskRegistry,
    mixture_registry: Registry = MixtureRegistry,
) -> list[TaskFile]:
    """Register the task files a run was trained with (see the module docstring)."""
    run_dir = Path(run_dir)
    entries = read_manifest(run_dir) or []
    loaded = []
    for entry in entries:
        original = Path(entry["original"])
        copy = run_dir / RECORD_DIR / entry["copy"]
        changed = original.is_file() and _sha256(original) != entry["sha256"]
        if changed and not accept_changes:
            raise ConfigError(
                f"{_names(entry)}: task file {original} changed since run {run_dir} was "
                "trained; pass --accept-changed-tasks to use it as it is now"
            )
        if original.is_file():
            path = original
        elif copy.is_file():
            path = copy
        else:
            raise ConfigError(
                f"{run_dir}: the task file {original} is gone and so is the run's copy "
                f"({copy}); the run's tasks ({', '.join(entry['tasks'])}) cannot be loaded"
            )
        problems = _data_changes(entry)
        if problems and not accept_changes:
            raise ConfigError(
                f"run {run_dir}: its data changed since it was trained:\n  "
                + "\n  ".join(problems)
                + "\npass --accept-changed-tasks to use the data as it is now"
            )
        loaded.append(
            load_task_file(
                path,
                task_registry=task_registry,
                mixture_registry=mixture_registry,
                base_dir=original.parent,
                origin=original,
            )
        )
    return loaded
