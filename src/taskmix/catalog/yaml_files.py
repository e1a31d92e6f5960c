"""Task files in YAML: ``tasks:``, ``pretraining:`` and ``mixtures:`` read, checked and registered.

The file is read with the strict YAML reader (a duplicate key is an error with its line) and
validated with pydantic (``extra="forbid"``); every problem is a ``ConfigError`` naming the
file, the key path (``tasks[2].source.splits``) and what was expected. Nothing is registered
unless the whole file is valid. See docs/tasks.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskmix.catalog.pretraining import PretrainingConfig, build_pretraining_task
from taskmix.data.declarative import MixtureConfig, TaskConfig, build_task
from taskmix.data.mixtures import Mixture
from taskmix.data.registry import MixtureRegistry, Registry, TaskRegistry
from taskmix.data.task import Task
from taskmix.data.vocabulary import LazyVocabulary, Vocabulary
from taskmix.default_data import default_vocabulary as _default_data_vocabulary
from taskmix.errors import ConfigError
from taskmix.yamlconf import YamlFile, read_yaml_file, validate

# Entries without ``vocabulary:`` share this one instance, so their features compare equal.
DEFAULT_VOCABULARY: Vocabulary = LazyVocabulary(_default_data_vocabulary)


class FileConfig(BaseModel):
    """A whole task file."""

    model_config = ConfigDict(extra="forbid")

    tasks: list[TaskConfig] = Field(default_factory=list)
    pretraining: list[PretrainingConfig] = Field(default_factory=list)
    mixtures: list[MixtureConfig] = Field(default_factory=list)


def read_config(path: Path | str) -> FileConfig:
    """Parse and validate a task file (no sources opened, nothing registered)."""
    return _read(path)[0]


def _read(path: Path | str) -> tuple[FileConfig, YamlFile]:
    file = read_yaml_file(path, what="task file")
    data = file.data
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: (top level): expected a mapping with 'tasks', 'pretraining' and/or "
            f"'mixtures', got {type(data).__name__}"
        )
    return validate(FileConfig, data, f"{path}: invalid task file", file), file


def _check_names(
    config: FileConfig,
    file: YamlFile,
    task_registry: Registry,
    mixture_registry: Registry,
    overwrite: bool,
) -> None:
    """Names are unique in the file and do not clash with registered ones (unless overwriting);
    a clash names the line, and the file that registered the name first."""
    first: dict[str, str] = {}
    entries = [("tasks", i, t.name, "task") for i, t in enumerate(config.tasks)]
    entries += [("pretraining", i, t.name, "task") for i, t in enumerate(config.pretraining)]
    entries += [("mixtures", i, m.name, "mixture") for i, m in enumerate(config.mixtures)]
    for section, i, name, kind in entries:
        key = f"{section}[{i}].name"
        where = f"{file.where((section, i, 'name'))}: {key}"
        if name in first:
            raise ConfigError(f"{where}: {name!r} is already defined at {first[name]}")
        first[name] = f"{file.where((section, i, 'name'))} ({section}[{i}])"
        same, other = (
            (task_registry, mixture_registry)
            if kind == "task"
            else (mixture_registry, task_registry)
        )
        if name in other:
            other_kind = "mixture" if kind == "task" else "task"
            raise ConfigError(
                f"{where}: {name!r} is already a registered {other_kind}{_origin(other, name)} "
                "(tasks and mixtures share one namespace)"
            )
        if name in same and not overwrite:
            raise ConfigError(
                f"{where}: {kind} {name!r} is already registered{_origin(same, name)}; "
                "rename one of them"
            )


def _origin(registry: Registry, name: str) -> str:
    """`` (by FILE)`` for an item that a task file registered."""
    item = registry.get(name)
    origin = getattr(item, "metadata", {}).get("config_file")
    return f" (by {origin})" if origin else ""


def _build_mixtures(
    config: FileConfig,
    path: Path,
    tasks: dict[str, Task],
    task_registry: Registry,
    mixture_registry: Registry,
) -> list:
    """Mixtures in dependency order; components become objects, so custom registries work."""
    by_name = {m.name: (i, m) for i, m in enumerate(config.mixtures)}
    built: dict[str, Mixture] = {}
    visiting: list[str] = []

    def resolve(name: str, key: str):
        if name in tasks:
            return tasks[name]
        if name in by_name:
            return build(name)
        if name in mixture_registry:
            return mixture_registry.get(name)
        if name in task_registry:
            return task_registry.get(name)
        raise ConfigError(
            f"{path}: {key}: expected the name of a task or mixture defined in this file or "
            f"registered, got {name!r}"
        )

    def build(name: str) -> Mixture:
        if name in built:
            return built[name]
        i, spec = by_name[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ConfigError(f"{path}: mixtures[{i}].tasks: mixtures nest in a cycle: {cycle}")
        visiting.append(name)
        components = []
        for j, component in enumerate(spec.tasks):
            obj = resolve(component.name, f"mixtures[{i}].tasks[{j}].name")
            components.append(obj if component.rate is None else (obj, component.rate))
        kwargs: dict[str, Any] = {"strategy": spec.strategy, "cap": spec.cap}
        kwargs["temperature"] = spec.temperature
        if spec.scale:
            kwargs["scale"] = spec.scale
        try:
            mixture = Mixture(name, components, **kwargs)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: mixtures[{i}]: {err}") from None
        visiting.pop()
        built[name] = mixture
        return mixture

    return [build(m.name) for m in config.mixtures]


def load_yaml(
    path: Path | str,
    *,
    task_registry: Registry = TaskRegistry,
    mixture_registry: Registry = MixtureRegistry,
    overwrite: bool = False,
    default_vocabulary: Vocabulary | None = None,
    base_dir: Path | None = None,
) -> tuple[list[Task], list[Mixture]]:
    """Load, validate and register the tasks and mixtures of a YAML file.

    Returns ``(tasks, mixtures)``. Relative paths resolve against ``base_dir`` (default: the
    file's folder; a run's copy of a task file resolves against the original's); entries
    without ``vocabulary:`` use ``default_vocabulary`` (the embedded default data's, unless
    given). All or nothing: any problem raises ConfigError before anything is registered.
    """
    path = Path(path)
    config, file = _read(path)
    default_vocabulary = default_vocabulary or DEFAULT_VOCABULARY
    base_dir = Path(base_dir) if base_dir is not None else path.resolve().parent
    _check_names(config, file, task_registry, mixture_registry, overwrite)
    tasks: dict[str, Task] = {}
    for i, task_config in enumerate(config.tasks):
        try:
            task = build_task(
                task_config, base_dir, default_vocabulary=default_vocabulary, key=f"tasks[{i}]"
            )
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        task.metadata["config_file"] = str(path.resolve())
        tasks[task.name] = task
    for i, pretraining_config in enumerate(config.pretraining):
        try:
            task = build_pretraining_task(
                pretraining_config,
                base_dir,
                default_vocabulary=default_vocabulary,
                key=f"pretraining[{i}]",
            )
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        task.metadata["config_file"] = str(path.resolve())
        tasks[task.name] = task
    mixtures = _build_mixtures(config, path, tasks, task_registry, mixture_registry)
    for task in tasks.values():
        task_registry.add(task, overwrite=overwrite)
    for mixture in mixtures:
        mixture_registry.add(mixture, overwrite=overwrite)
    return list(tasks.values()), mixtures
