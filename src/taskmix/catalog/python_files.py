"""Task files in Python: a module whose ``register(registry)`` function adds tasks and mixtures.

    # my_project/tasks.py
    def register(registry):
        registry.add(Task("my_task", source=..., preprocessors=[...], output_features=...))

The module is executed from its path (it is not put on ``sys.path`` or in ``sys.modules``) and
``register`` is called explicitly: importing it registers nothing. As with YAML files, all or
nothing: a name added twice, or one that is registered already, is an error naming the file
and the line of the ``add`` call, and nothing of the file is registered.
"""

from __future__ import annotations

import hashlib
import importlib.util
import traceback
from pathlib import Path

from taskmix.data.mixtures import Mixture
from taskmix.data.registry import Registry
from taskmix.data.task import Task
from taskmix.errors import ConfigError


class TaskFileRegistry:
    """What ``register(registry)`` receives: ``add`` a Task or Mixture, ``get`` a name (this
    file's additions first, then everything registered)."""

    def __init__(self, path: Path, tasks: Registry, mixtures: Registry, overwrite: bool):
        self.path = path
        self._registries = {"task": tasks, "mixture": mixtures}
        self._overwrite = overwrite
        self.added: dict[str, tuple[str, Task | Mixture, str]] = {}  # name -> kind, item, where

    def add(self, item: Task | Mixture) -> Task | Mixture:
        kind = "task" if isinstance(item, Task) else "mixture" if isinstance(item, Mixture) else ""
        where = self._caller()
        if not kind:
            raise ConfigError(f"{where}: register() may add a Task or a Mixture, got {item!r:.80}")
        name = item.name
        if name in self.added:
            raise ConfigError(f"{where}: {kind} {name!r} is already added at {self.added[name][2]}")
        other = "mixture" if kind == "task" else "task"
        if name in self._registries[other]:
            raise ConfigError(
                f"{where}: {name!r} is already a registered {other} (tasks and mixtures share "
                "one namespace)"
            )
        if name in self._registries[kind] and not self._overwrite:
            raise ConfigError(f"{where}: {kind} {name!r} is already registered; rename one")
        if isinstance(item, Task):
            item.metadata["config_file"] = str(self.path)
        self.added[name] = (kind, item, where)
        return item

    def get(self, name: str) -> Task | Mixture:
        if name in self.added:
            return self.added[name][1]
        for registry in self._registries.values():
            if name in registry:
                return registry.get(name)
        return self._registries["task"].get(name)  # raises UnknownNameError with a hint

    def _caller(self) -> str:
        """``path:line`` of the ``add`` call in the task file (or just the path)."""
        for frame in reversed(traceback.extract_stack()):
            if Path(frame.filename) == self.path:
                return f"{self.path}:{frame.lineno}"
        return str(self.path)


def load_python(
    path: str | Path,
    *,
    task_registry: Registry,
    mixture_registry: Registry,
    overwrite: bool = False,
) -> tuple[list[Task], list[Mixture]]:
    """Run the module at ``path`` and its ``register(registry)``; register what it added."""
    path = Path(path).resolve()
    if not path.is_file():
        raise ConfigError(f"{path}: task file not found")
    digest = hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    spec = importlib.util.spec_from_file_location(f"taskmix_task_file_{digest}", path)
    if spec is None or spec.loader is None:
        raise ConfigError(f"{path}: cannot be loaded as a Python module")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as err:
        raise ConfigError(f"{path}: failed to run: {type(err).__name__}: {err}") from err
    register = getattr(module, "register", None)
    if not callable(register):
        raise ConfigError(
            f"{path}: a Python task file must define register(registry), which adds its tasks"
        )
    registry = TaskFileRegistry(path, task_registry, mixture_registry, overwrite)
    try:
        register(registry)
    except ConfigError:
        raise
    except Exception as err:
        raise ConfigError(f"{path}: register() failed: {type(err).__name__}: {err}") from err
    tasks = [item for kind, item, _ in registry.added.values() if kind == "task"]
    mixtures = [item for kind, item, _ in registry.added.values() if kind == "mixture"]
    for task in tasks:
        task_registry.add(task, overwrite=overwrite)
    for mixture in mixtures:
        mixture_registry.add(mixture, overwrite=overwrite)
    return tasks, mixtures
