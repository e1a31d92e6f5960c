"""What task and mixture names mean to a command: the embedded defaults plus the user's task files.

Every command that takes task names (``train``, ``eval``, ``predict``, ``tasks``, ``mixture``)
calls ``load_task_files`` with the files of its ``--tasks`` flags or its config's ``tasks:``
key, so a user's own tasks work everywhere the default ones do. A task file is

- YAML (``.yaml``/``.yml``): ``tasks:``, ``pretraining:`` and ``mixtures:`` entries
  (``yaml_files``, docs/tasks.md);
- Python (``.py``): a module whose ``register(registry)`` adds tasks (``python_files``).

Loading is explicit and idempotent: the same file with the same content is registered once
per process, so a command may call this as often as it needs. ``records`` keeps a run's task
files with the run, so it can be evaluated after the originals moved.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taskmix.catalog.python_files import load_python
from taskmix.catalog.yaml_files import load_yaml, read_config
from taskmix.data.registry import MixtureRegistry, Registry, TaskRegistry
from taskmix.data.task import Task
from taskmix.default_data import register_default_tasks
from taskmix.errors import ConfigError

__all__ = ["TaskFile", "load_task_file", "load_task_files", "load_yaml", "read_config"]

KINDS = {".yaml": "yaml", ".yml": "yaml", ".py": "python"}


@dataclass
class TaskFile:
    """A loaded task file: where it is, what it held, and what it registered."""

    path: Path
    kind: str  # yaml | python
    sha256: str
    tasks: list[str] = field(default_factory=list)
    mixtures: list[str] = field(default_factory=list)
    data_files: dict[str, list[Path]] = field(default_factory=dict)  # task -> its local files


# (task registry, mixture registry, path) -> the TaskFile loaded there, for idempotence
_LOADED: dict[tuple[int, int, Path], TaskFile] = {}


def file_kind(path: Path) -> str:
    kind = KINDS.get(path.suffix.lower())
    if kind is None:
        raise ConfigError(
            f"{path}: a task file is YAML (.yaml, .yml) or Python (.py), got {path.suffix!r}"
        )
    return kind


def load_task_file(
    path: str | Path,
    *,
    task_registry: Registry = TaskRegistry,
    mixture_registry: Registry = MixtureRegistry,
    base_dir: Path | None = None,
    origin: Path | None = None,
) -> TaskFile:
    """Register one task file (once per content). ``origin`` and ``base_dir`` serve a copy of a
    task file kept in a run folder: the original's path, whose folder relative paths resolve
    against."""
    path = Path(path).resolve()
    kind = file_kind(path)
    if not path.is_file():
        raise ConfigError(f"{path}: task file not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    key = (id(task_registry), id(mixture_registry), (origin or path).resolve())
    loaded = _LOADED.get(key)
    if loaded is not None and loaded.sha256 == digest:
        return loaded
    overwrite = loaded is not None  # the file changed: its new version replaces the old one
    registries = {"task_registry": task_registry, "mixture_registry": mixture_registry}
    if kind == "yaml":
        tasks, mixtures = load_yaml(path, overwrite=overwrite, base_dir=base_dir, **registries)
    else:
        tasks, mixtures = load_python(path, overwrite=overwrite, **registries)
    if origin is not None:
        for task in tasks:
            task.metadata["config_file"] = str(origin)
    record = TaskFile(
        (origin or path).resolve(),
        kind,
        digest,
        [t.name for t in tasks],
        [m.name for m in mixtures],
        {t.name: _data_files(t, path) for t in tasks},
    )
    _LOADED[key] = record
    return record


def _data_files(task: Task, path: Path) -> list[Path]:
    try:
        return [p.resolve() for p in task.source.data_files()]
    except FileNotFoundError as err:
        raise ConfigError(f"{path}: task {task.name!r}: {err}") from None


def load_task_files(
    paths: Sequence[str | Path] = (),
    *,
    task_registry: Registry = TaskRegistry,
    mixture_registry: Registry = MixtureRegistry,
    defaults: bool = True,
) -> list[TaskFile]:
    """Register the default tasks and mixtures (unless ``defaults=False``), then each task file
    in order; returns what each file registered."""
    if defaults:
        register_default_tasks(task_registry, mixture_registry)
    return [
        load_task_file(p, task_registry=task_registry, mixture_registry=mixture_registry)
        for p in paths
    ]
