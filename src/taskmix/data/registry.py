"""Registries of tasks and mixtures. Nothing registers itself, at import time or later.

A registry holds what was added to it, explicitly: the embedded default tasks by
``taskmix.default_data.register_default_tasks(registry)``, a user's task files by
``taskmix.catalog.load_task_files`` (which every command calls), or ``add`` from Python.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Generic, TypeVar

from taskmix.data.task import validate_name
from taskmix.errors import UnknownNameError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def add(self, item: T, *, overwrite: bool = False) -> T:
        name = validate_name(item.name, f"{self.kind} name")  # type: ignore[attr-defined]
        if name in self._items and not overwrite:
            raise ValueError(f"{self.kind} {name!r} is already registered (pass overwrite=True)")
        self._items[name] = item
        return item

    def remove(self, name: str) -> None:
        self._items.pop(name, None)

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            close = [n for n in self._items if name.lower() in n.lower()][:5]
            hint = f"; did you mean {close}?" if close else ""
            raise UnknownNameError(f"unknown {self.kind} {name!r}{hint}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def names(self) -> list[str]:
        return sorted(self._items)

    def __iter__(self) -> Iterator[T]:
        return iter([self._items[n] for n in sorted(self._items)])


TaskRegistry: Registry = Registry("task")
MixtureRegistry: Registry = Registry("mixture")


def get_task(name: str):
    return TaskRegistry.get(name)


def get_mixture(name: str):
    return MixtureRegistry.get(name)
