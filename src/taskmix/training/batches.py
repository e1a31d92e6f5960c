"""Endless packed training batches whose state restores exactly (for kill-and-resume).

Each batch is packed on its own: examples go first-fit into the batch's rows; an example that
fits no row waits for the next batch. So the whole state is the example stream's state plus the
few waiting examples, which are saved with every checkpoint, together with the converter's
truncation/drop counts (so a resumed run reports the same counts as an uninterrupted one).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np

from taskmix.data.feature_converters import FeatureConverter
from taskmix.data.report import ErrorReport

Batch = dict[str, np.ndarray]
REPORT_KINDS = ("truncated", "dropped", "skipped")


def non_pad_tokens(batch: Batch) -> int:
    """Real (non-padding) input + target tokens of a batch, as bench/train_throughput.py counts
    them: encoder inputs plus decoder targets (a decoder-only row holds both in its targets)."""
    return sum(
        int(np.count_nonzero(batch[key]))
        for key in ("encoder_input_tokens", "decoder_target_tokens")
        if key in batch
    )


class BatchStream(Iterator[Batch]):
    """Batches of ``batch_size`` rows from an example stream through a feature converter.

    ``state_dict`` needs a restorable stream (a ``MixtureStream``); iterating needs any iterator.

    A batch is closed once ``max_misses`` examples in a row found no room (they are carried
    over, in order) or every row is full. More misses give denser rows and larger carry-over.
    """

    def __init__(
        self,
        examples: Iterator[dict[str, Any]],
        converter: FeatureConverter,
        batch_size: int,
        *,
        max_misses: int = 8,
    ):
        self.examples = examples
        self.converter = converter
        self.batch_size = batch_size
        self.max_misses = max_misses
        self.pending: list[Any] = []  # prepared examples drawn but not yet placed
        self.num_examples = 0  # examples placed in batches so far (for reports)

    def __iter__(self) -> BatchStream:
        return self

    def __next__(self) -> Batch:
        lengths = self.converter.stream_lengths
        rows: list[list[Any]] = [[] for _ in range(self.batch_size)]
        free = [list(lengths) for _ in range(self.batch_size)]
        pack = self.converter.pack

        def place(item: Any) -> bool:
            sizes = [len(s) for s in item[0]]
            for r in range(self.batch_size):
                if (pack or not rows[r]) and all(
                    s <= f for s, f in zip(sizes, free[r], strict=True)
                ):
                    rows[r].append(item)
                    free[r] = [f - s for f, s in zip(free[r], sizes, strict=True)]
                    return True
            return False

        carried, self.pending = self.pending, []
        for item in carried:
            if not place(item):
                self.pending.append(item)
        misses = 0
        while misses < self.max_misses and not all(min(f) == 0 for f in free):
            item = self.converter.prepare(next(self.examples))
            if item is None:
                continue
            if place(item):
                misses = 0
            else:
                self.pending.append(item)
                misses += 1
        self.num_examples += sum(len(row) for row in rows)
        return self.converter.build_batch([row for row in rows if row], self.batch_size, lengths)

    def state_dict(self) -> dict[str, Any]:
        return {
            "examples": self.examples.state_dict(),
            "pending": [
                [[s.tolist() for s in streams], prefix, task]
                for streams, prefix, task in self.pending
            ],
            "num_examples": self.num_examples,
            "converter": self.converter.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.examples.load_state_dict(state["examples"])
        self.pending = [
            # [streams, prefix, task]; checkpoints from before task ids hold [streams, prefix]
            (tuple(np.asarray(s, dtype=np.int32) for s in item[0]), item[1], (item[2:] or [0])[0])
            for item in state["pending"]
        ]
        self.num_examples = state["num_examples"]
        if "converter" in state:  # absent from checkpoints written before counts were saved
            self.converter.load_state_dict(state["converter"])

    def reports(self) -> dict[str, ErrorReport]:
        """What was truncated, dropped or skipped so far: ``packing`` (the feature converter)
        and, when the example stream keeps them (a MixtureStream), one report per task."""
        return {"packing": self.converter.report, **getattr(self.examples, "reports", {})}
