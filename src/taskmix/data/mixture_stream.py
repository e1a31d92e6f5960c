"""A mixture read as one endless, seeded, restorable stream of examples (``Mixture.get_stream``).

The task at step ``i`` is drawn from a generator seeded by ``(seed, split, shard, i // 1024)``,
and each task is read epoch after epoch, epoch ``e`` being ``task.get_dataset(split,
seed=stable_seed(seed, task), epoch=e, shard...)``. Both are pure functions of their seeds, so a
stream's whole state is its step and, per task, (epoch, offset) plus the task's report of
skipped and dropped records: ``state_dict`` is small JSON and a restored stream yields (and
counts) exactly what the original would have.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from taskmix.data.report import ErrorReport
from taskmix.data.task import Example, Task, stable_seed
from taskmix.errors import EmptyTaskError

# Version 2 added the per-task reports; a version-1 state still loads (without counts).
STATE_VERSION = 2


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
