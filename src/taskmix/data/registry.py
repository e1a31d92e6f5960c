"""Registries of tasks and mixtures. Nothing registers itself at import time.

The embedded default tasks are registered the first time a registry is read (``get``, ``names``),
by calling ``taskmix.data.default.register_default_tasks``; user tasks are added with ``add`` or
loaded from YAML with ``taskmix.data.declarative.load_yaml``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from taskmix.data.task import validate_name
from taskmix.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}
        self._loaders: list[Callable[[], None]] = []
        self._loading = False

    def add_loader(self, loader: Callable[[], None]) -> None:
        """A function run once, before the first read, that fills the registry (default tasks)."""
        self._loaders.append(loader)

    def _load(self) -> None:
        if self._loading:
            return
        self._loading = True
        try:
            while self._loaders:
                self._loaders[0]()  # removed only once it succeeded, so a failure is retried
                self._loaders.pop(0)
        finally:
            self._loading = False

    def add(self, item: T, *, overwrite: bool = False) -> T:
        name = validate_name(item.name, f"{self.kind} name")  # type: ignore[attr-defined]
        if name in self._items and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass overwrite=True)")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        self._load()
        try:
            return self._items[name]
        except KeyError:
            close = [n for n in self._items if name.lower() in n.lower()][:5]
            hint = f"; did you mean {close}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}") from None

    def __contains__(self, name: str) -> bool:
        self._load()
        return name in self._items

    def names(self) -> list[str]:
        self._load()
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        self._load()
        return iter([self._items[n] for n in sorted(self._items)])


TaskRegistry: Registry = Registry("task")
MixtureRegistry: Registry = Registry("mixture")


def _load_defaults() -> None:
    from taskmix.data.default import register_default_tasks

    register_default_tasks()


TaskRegistry.add_loader(_load_defaults)
MixtureRegistry.add_loader(lambda: TaskRegistry._load())


def get_task(name: str):
    return TaskRegistry.get(name)


def get_mixture(name: str):
    return MixtureRegistry.get(name)
