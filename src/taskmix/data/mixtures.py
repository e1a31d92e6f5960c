"""Mixtures: weighted sets of tasks (and of other mixtures) read as one endless, seeded stream.

A mixture names its components; names are looked up in ``TaskRegistry`` / ``MixtureRegistry``
only when the mixture is used, so a mixture may be registered before its tasks.

Rates (SPEC §6, ``taskmix.data.rates``): each component gets ``min(s·e, K)^(1/T)`` from its
example count ``e`` in the requested split, or the fixed weight given in a ``(component,
weight)`` tuple. A sub-mixture counts as one component whose example count is the sum of its
tasks' counts (seqio's ``Mixture.num_input_examples``); its share is then split among its tasks
by the sub-mixture's own rates, exactly like seqio's ``get_rate`` (``rate · sub_rate /
sub_total``). A task reached twice (directly and through a sub-mixture) gets the sum.

Streams (``Mixture.get_stream``): the task at step ``i`` is drawn from a generator seeded by
``(seed, split, shard, i // 1024)``, and each task is read epoch after epoch, epoch ``e`` being
``task.get_dataset(split, seed=stable_seed(seed, task), epoch=e, shard...)``. Both are pure
functions of their seeds, so a stream's whole state is its step and, per task, (epoch, offset)
plus the task's report of skipped and dropped records: ``state_dict`` is small JSON and a
restored stream yields (and counts) exactly what the original would have.

Sharding is by record position: shard ``k`` of a task reads records ``i % num_shards == k``, so
in every epoch the shards read disjoint records and together all of them (docs/mixtures.md).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskmix.data.mixture_stream import MixtureStream
from taskmix.data.rates import Strategy, mixing_rates
from taskmix.data.registry import MixtureRegistry, TaskRegistry
from taskmix.data.task import Task, validate_name
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import UnknownNameError


def _lookup(name: str) -> Task | Mixture:
    """A registered task or mixture by name (they share one namespace, as in seqio)."""
    is_task, is_mixture = name in TaskRegistry, name in MixtureRegistry
    if is_task and is_mixture:
        raise ValueError(f"{name!r} is registered both as a task and as a mixture; rename one")
    if is_task:
        return TaskRegistry.get(name)
    if is_mixture:
        return MixtureRegistry.get(name)
    raise UnknownNameError(
        f"unknown task or mixture {name!r} (register it before using the mixture)"
    )


def _component_name(component: Component) -> str:
    if isinstance(component, str):
        return validate_name(component, "component name")
    if isinstance(component, (Task, Mixture)):
        return component.name
    raise TypeError(f"a mixture component is a name, Task or Mixture, got {type(component)!r}")


def _check_split(task: Task, split: str, mixture: str) -> None:
    if split not in task.splits:
        raise ValueError(
            f"task {task.name!r} in mixture {mixture!r} has no split {split!r}; "
            f"it has {list(task.splits)}"
        )


class Mixture:
    """A named, weighted set of tasks and sub-mixtures; see the module docstring for the rates."""

    def __init__(
        self,
        name: str,
        components: Sequence[ComponentSpec],
        *,
        strategy: Strategy = "proportional",
        cap: int | None = None,
        temperature: float = 1.0,
        scale: Mapping[str, float] | None = None,
    ):
        self.name = validate_name(name, "mixture name")
        if isinstance(components, (str, Task, Mixture)) or not components:
            raise ValueError(f"mixture {name!r} needs a non-empty list of components")
        self._components: list[tuple[str, Component, float | None]] = []
        for spec in components:
            weight: float | None = None
            if isinstance(spec, tuple):
                if len(spec) != 2:
                    raise ValueError(
                        f"mixture {name!r}: a weighted component is (name, weight), got {spec!r}"
                    )
                spec, weight = spec
            key = _component_name(spec)
            if any(key == seen for seen, _, _ in self._components):
                raise ValueError(f"mixture {name!r} lists component {key!r} twice")
            self._components.append((key, spec, weight))
        self.strategy = strategy
        self.cap = cap
        self.temperature = temperature
        self.scale = dict(scale or {})
        # Check the arguments now, with placeholder counts, so a bad config fails at definition.
        mixing_rates(
            {key: 1 for key, _, _ in self._components},
            strategy=strategy,
            cap=cap,
            temperature=temperature,
            scale=self.scale,
            explicit=self._explicit_weights(),
        )

    def __repr__(self) -> str:
        parts = [key if w is None else f"({key}, {w})" for key, _, w in self._components]
        return f"Mixture({self.name!r}, [{', '.join(parts)}], strategy={self.strategy!r})"

    def with_rates(
        self,
        *,
        strategy: Strategy | None = None,
        cap: int | None = None,
        temperature: float | None = None,
    ) -> Mixture:
        """The same components with other rate settings (CLI and config overrides).

        Settings not given are kept only where the new strategy uses them: switching to
        ``equal`` or ``explicit`` drops the old cap, temperature and scale, and switching to
        ``proportional`` resets the temperature to 1. Settings given explicitly are never
        dropped, so ``strategy="equal", cap=10`` is still an error.
        """
        if strategy is None:
            strategy = "temperature" if temperature not in (None, 1.0) else self.strategy
        counted = strategy in ("proportional", "temperature")
        if cap is None and counted:
            cap = self.cap
        if temperature is None:
            temperature = self.temperature if strategy == "temperature" else 1.0
        return Mixture(
            self.name,
            [spec if w is None else (spec, w) for _, spec, w in self._components],
            strategy=strategy,
            cap=cap,
            temperature=temperature,
            scale=self.scale if counted else None,
        )

    @property
    def component_names(self) -> list[str]:
        return [key for key, _, _ in self._components]

    def _explicit_weights(self) -> dict[str, float]:
        return {key: w for key, _, w in self._components if w is not None}

    def _resolved(self, stack: tuple[str, ...]) -> tuple[list[tuple[str, Task | Mixture]], tuple]:
        """Components as objects (registry lookups happen here); detects cycles of mixtures."""
        if self.name in stack:
            raise ValueError(f"mixtures nest in a cycle: {' -> '.join((*stack, self.name))}")
        resolved = []
        for key, component, _ in self._components:
            obj = _lookup(component) if isinstance(component, str) else component
            if obj.name != key:
                raise ValueError(
                    f"component {key!r} of mixture {self.name!r} resolved to {obj.name!r}"
                )
            resolved.append((key, obj))
        return resolved, (*stack, self.name)

    def _leaves(self, stack: tuple[str, ...] = ()) -> dict[str, Task]:
        leaves: dict[str, Task] = {}
        resolved, stack = self._resolved(stack)
        for _, obj in resolved:
            found = {obj.name: obj} if isinstance(obj, Task) else obj._leaves(stack)
            for task_name, task in found.items():
                if leaves.setdefault(task_name, task) is not task:
                    raise ValueError(
                        f"mixture {self.name!r} reaches two different tasks named {task_name!r}"
                    )
        return leaves

    @property
    def tasks(self) -> list[Task]:
        """The leaf tasks, each once, sorted by name (sub-mixtures flattened)."""
        leaves = self._leaves()
        return [leaves[name] for name in sorted(leaves)]

    @property
    def splits(self) -> list[str]:
        """Splits that every task of the mixture has."""
        common = None
        for task in self.tasks:
            common = set(task.splits) if common is None else common & set(task.splits)
        return sorted(common or ())

    def num_examples(self, split: str = "train") -> dict[str, int]:
        """Source records per leaf task in ``split`` (what rates are computed from)."""
        out = {}
        for task in self.tasks:
            _check_split(task, split, self.name)
            out[task.name] = task.num_input_examples(split)
        return out

    def num_input_examples(self, split: str = "train") -> int:
        """Sum over the leaf tasks: a sub-mixture's example count in its parent."""
        return sum(self.num_examples(split).values())

    def _leaf_rates(self, split: str, stack: tuple[str, ...]) -> dict[str, float]:
        resolved, stack = self._resolved(stack)
        needs_counts = self.strategy in ("proportional", "temperature")
        counts: dict[str, int] = {}
        for key, obj in resolved:
            leaves = [obj] if isinstance(obj, Task) else obj._leaves(stack).values()
            for task in leaves:
                _check_split(task, split, self.name)
            counts[key] = sum(t.num_input_examples(split) for t in leaves) if needs_counts else 0
        level = mixing_rates(
            counts,
            strategy=self.strategy,
            cap=self.cap,
            temperature=self.temperature,
            scale=self.scale,
            explicit=self._explicit_weights(),
        )
        out: dict[str, float] = defaultdict(float)
        for key, obj in resolved:
            if isinstance(obj, Task):
                out[obj.name] += level[key]
            elif level[key] > 0:
                for task_name, rate in obj._leaf_rates(split, stack).items():
                    out[task_name] += level[key] * rate
            else:
                for task in obj._leaves(stack).values():
                    out[task.name] += 0.0
        return dict(out)

    def rates(self, split: str = "train") -> dict[str, float]:
        """Flattened rate of every leaf task (sums to 1), in ``tasks`` order."""
        flat = self._leaf_rates(split, ())
        total = sum(flat.values())
        return {name: flat[name] / total for name in sorted(flat)}

    def describe(self, split: str = "train") -> list[dict[str, Any]]:
        """One row per leaf task: task, family, num_examples, rate (``taskmix mixture show``)."""
        rates = self.rates(split)
        counts = self.num_examples(split)
        return [
            {
                "task": task.name,
                "family": task.family,
                "num_examples": counts[task.name],
                "rate": rates[task.name],
            }
            for task in self.tasks
        ]

    def get_stream(
        self,
        split: str = "train",
        *,
        seed: int = 0,
        shard_index: int = 0,
        num_shards: int = 1,
        sequence_length: Mapping[str, int] | None = None,
        vocabulary: Vocabulary | None = None,
    ) -> MixtureStream:
        """An endless, restorable stream of examples of this mixture for one data-parallel rank.

        Rank ``shard_index`` of ``num_shards`` reads only its shard of every task's source, so
        ranks never see the same record within an epoch. ``vocabulary`` replaces every task's.
        """
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed must be an integer, got {seed!r}")
        if not (isinstance(num_shards, int) and num_shards >= 1):
            raise ValueError(f"num_shards must be an integer >= 1, got {num_shards!r}")
        if not (isinstance(shard_index, int) and 0 <= shard_index < num_shards):
            raise ValueError(f"shard_index must be in [0, {num_shards}), got {shard_index!r}")
        rates = self.rates(split)
        tasks = self.tasks
        if vocabulary is not None:
            tasks = [task.with_vocabulary(vocabulary) for task in tasks]
        return MixtureStream(
            self.name,
            tasks,
            [rates[task.name] for task in tasks],
            split=split,
            seed=int(seed),
            shard_index=shard_index,
            num_shards=num_shards,
            sequence_length=sequence_length,
        )


# What ``Mixture`` accepts as a component: a name, a task, a mixture, or one of them with a weight.
Component = str | Task | Mixture
ComponentSpec = Component | tuple[Component, float]


def as_mixture(item: str | Task | Mixture) -> Mixture:
    """A mixture as it is, a task as a one-task mixture, or a registered name as either."""
    if isinstance(item, Mixture):
        return item
    if isinstance(item, Task):
        return Mixture(item.name, [item])
    if isinstance(item, str):
        return as_mixture(_lookup(item))
    raise TypeError(f"expected a task or mixture (or its name), got {type(item)!r}")
