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
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskmix.data.rates import Strategy, mixing_rates
from taskmix.data.registry import MixtureRegistry, TaskRegistry
from taskmix.data.report import ErrorReport
from taskmix.data.task import Example, Task, stable_seed, validate_name
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import TaskmixError, UnknownNameError

# Version 2 added the per-task reports; a version-1 state still loads (without counts).
STATE_VERSION = 2


class EmptyTaskError(TaskmixError, ValueError):
    """A task chosen by a stream has no examples in its shard: sampling it would loop forever."""


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


@dataclass
class _Position:
    """Where a stream is in one task: the epoch being read and how many of its examples were used."""

    epoch: int = 0
    offset: int = 0


class MixtureStream(Iterator[Example]):
    """Endless examples of a mixture; each gets ``_task``. Restore with ``load_state_dict``.

    ``reports[task_name]`` counts that task's skipped and dropped records, each record once
    (in the task's epoch 0), and is part of the state.
    """

    BLOCK = 1024  # task choices are drawn this many at a time, from a seed that names the block

    def __init__(
        self,
        mixture_name: str,
        tasks: Sequence[Task],
        rates: Sequence[float],
        *,
        split: str,
        seed: int,
        shard_index: int,
        num_shards: int,
        sequence_length: Mapping[str, int] | None = None,
    ):
        probs = np.asarray(rates, dtype=np.float64)
        if len(tasks) != len(probs) or not len(tasks) or (probs < 0).any() or not probs.sum() > 0:
            raise ValueError(f"mixture {mixture_name!r}: need one rate >= 0 per task, not all zero")
        self.mixture_name = mixture_name
        self.tasks = list(tasks)
        self.rates = {
            task.name: float(p) for task, p in zip(self.tasks, probs / probs.sum(), strict=True)
        }
        self._probs = probs / probs.sum()
        self.split = split
        self.seed = seed
        self.shard_index = shard_index
        self.num_shards = num_shards
        self.sequence_length = sequence_length
        self.step = 0
        self._positions = {task.name: _Position() for task in self.tasks}
        self._iterators: dict[str, Iterator[Example]] = {}
        self._block_index = -1
        self._block = np.zeros(0, dtype=np.int64)
        self.reports: dict[str, ErrorReport] = {task.name: ErrorReport() for task in self.tasks}
        self._uncounted: set[str] = set()  # tasks whose replayed records are not in the report

    def __iter__(self) -> MixtureStream:
        return self

    def position(self, task_name: str) -> tuple[int, int]:
        """(epoch, examples of that epoch already yielded) for one task."""
        pos = self._positions[task_name]
        return pos.epoch, pos.offset

    def _task_index(self, step: int) -> int:
        block, within = divmod(step, self.BLOCK)
        if block != self._block_index:
            rng = np.random.default_rng(
                stable_seed(
                    "mixture", self.seed, self.split, self.shard_index, self.num_shards, block
                )
            )
            self._block = rng.choice(len(self.tasks), size=self.BLOCK, p=self._probs)
            self._block_index = block
        return int(self._block[within])

    def _open(self, task: Task, epoch: int, skip: int) -> Iterator[Example]:
        """Epoch ``epoch`` of a task's shard, with its first ``skip`` examples dropped (replayed).

        Only epoch 0 counts into ``reports``: later epochs re-read the same records, so a bad
        record is counted once, not once per epoch. A replay re-reads records whose counts are
        already in the report (restored from the state, or counted before a failure), so the
        report is put back as it was before the replay.
        """
        report = self.reports[task.name] if epoch == 0 else ErrorReport()
        examples = task.get_dataset(
            self.split,
            seed=stable_seed(self.seed, task.name),
            epoch=epoch,
            shard_index=self.shard_index,
            num_shards=self.num_shards,
            sequence_length=self.sequence_length,
            report=report,
        )
        counted = report.state_dict()
        keep_replay_counts = task.name in self._uncounted  # a version-1 state had no counts
        self._uncounted.discard(task.name)
        try:
            for done in range(skip):
                if next(examples, None) is None:
                    raise ValueError(
                        f"cannot restore task {task.name!r}: epoch {epoch} has {done} examples, "
                        f"the state says {skip} were read (did the data change since the state "
                        "was saved?)"
                    )
        finally:
            if not keep_replay_counts:
                report.load_state_dict(counted)
        return examples

    def _next_from(self, task: Task) -> Example:
        pos = self._positions[task.name]
        for _ in range(2):  # the current epoch, then at most one fresh epoch
            examples = self._iterators.get(task.name)
            if examples is None:
                examples = self._iterators[task.name] = self._open(task, pos.epoch, pos.offset)
            try:
                example = next(examples, None)
            except BaseException:
                # A failed generator is finished: drop it so a retry replays (and fails) again
                # instead of mistaking it for the end of the epoch.
                del self._iterators[task.name]
                raise
            if example is not None:
                pos.offset += 1
                return example
            del self._iterators[task.name]
            if pos.offset == 0:
                break
            pos.epoch, pos.offset = pos.epoch + 1, 0
        raise EmptyTaskError(
            f"task {task.name!r} (mixture {self.mixture_name!r}) has no examples in split "
            f"{self.split!r}, shard {self.shard_index} of {self.num_shards} (epoch {pos.epoch}); "
            "remove it from the mixture, give it weight 0, or use fewer shards"
        )

    def __next__(self) -> Example:
        task = self.tasks[self._task_index(self.step)]
        example = dict(self._next_from(task))
        example["_task"] = task.name
        self.step += 1
        return example

    def _fingerprint(self) -> str:
        """Identifies tasks and rates, so a state cannot be loaded into a different mixture."""
        described = [(name, f"{rate:.12g}") for name, rate in self.rates.items()]
        return f"{stable_seed(self.mixture_name, described):016x}"

    def state_dict(self) -> dict[str, Any]:
        """Small JSON-serialisable state: the step, each task's (epoch, offset) and its counts."""
        return {
            "version": STATE_VERSION,
            "mixture": self.mixture_name,
            "fingerprint": self._fingerprint(),
            "split": self.split,
            "seed": self.seed,
            "shard_index": self.shard_index,
            "num_shards": self.num_shards,
            "step": self.step,
            "tasks": {name: [p.epoch, p.offset] for name, p in self._positions.items()},
            "reports": {name: report.state_dict() for name, report in self.reports.items()},
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state``; this stream must come from the same mixture and arguments."""
        version = state.get("version") if isinstance(state, Mapping) else None
        if version not in (1, STATE_VERSION):
            raise ValueError(
                f"not a mixture stream state of version 1 or {STATE_VERSION}: {state!r:.200}"
            )
        mine = self.state_dict()
        for key in ("mixture", "fingerprint", "split", "seed", "shard_index", "num_shards"):
            if state.get(key) != mine[key]:
                raise ValueError(
                    f"stream state has {key}={state.get(key)!r} but this stream has {mine[key]!r}: "
                    "restore into a stream made with the same mixture, split, seed and shard"
                )
        positions = state.get("tasks")
        if not isinstance(positions, Mapping) or set(positions) != set(self._positions):
            raise ValueError(
                f"stream state lists tasks {sorted(positions or ())}, expected {sorted(self._positions)}"
            )
        step = state.get("step")
        if not isinstance(step, int) or step < 0:
            raise ValueError(f"stream state has an invalid step {step!r}")
        new_positions = {}
        for name, value in positions.items():
            if (
                not isinstance(value, Sequence)
                or len(value) != 2
                or not all(isinstance(v, int) and v >= 0 for v in value)
            ):
                raise ValueError(
                    f"stream state has an invalid position {value!r} for task {name!r}"
                )
            new_positions[name] = _Position(epoch=value[0], offset=value[1])
        new_reports = self._reports_from(state) if version == STATE_VERSION else {}
        self.step = step
        self._positions = new_positions
        self._iterators = {}
        for name, report in self.reports.items():  # in place: references to reports stay valid
            report.load_state_dict(new_reports.get(name, ErrorReport()).state_dict())
        # A version-1 state saved no counts: let the first replay of each task count its records.
        self._uncounted = set() if version == STATE_VERSION else set(self.reports)

    def _reports_from(self, state: Mapping[str, Any]) -> dict[str, ErrorReport]:
        """The saved per-task reports, checked before anything of this stream changes."""
        saved = state.get("reports")
        if not isinstance(saved, Mapping) or set(saved) != set(self.reports):
            listed = sorted(saved) if isinstance(saved, Mapping) else saved
            raise ValueError(
                f"stream state has reports for {listed!r:.200}, expected {sorted(self.reports)}"
            )
        reports = {}
        for name, value in saved.items():
            reports[name] = ErrorReport()
            try:
                reports[name].load_state_dict(value)
            except ValueError as err:
                raise ValueError(f"stream state, task {name!r}: {err}") from None
        return reports
