"""How a default task is described (``TaskSpec``) and the helpers its generator uses.

A spec says how to *generate* a task's records (``build``) and how to *format* a record into a
T5-style example (a prefix plus ``key: value`` fields, or a bare prefix and text as T5's
``summarize:``/``translate ...:``). The records on disk keep their raw fields, so the JSONL
files are readable and the formatting is an ordinary preprocessor.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from taskmix.data.formatting import format_fields, require_text
from taskmix.default_data.world import World

Record = dict[str, Any]
Splits = dict[str, list[Record]]
SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    family: str
    description: str
    prefix: str
    input_keys: tuple[str, ...]  # fields written as ``key: value`` after the prefix
    target_key: str
    metrics: tuple[str, ...]
    postprocessor: Callable[..., Any]
    build: Callable[[World, random.Random, dict[str, int]], Splits]
    train_size: int
    in_mixture: bool = True
    labels: tuple[str, ...] | None = None  # label words, for classification tasks
    positive_label: str | None = None  # the positive class of binary F1
    raw_input_key: str | None = None  # input = prefix + " " + record[raw_input_key]

    def sizes(self) -> dict[str, int]:
        held_out = min(max(self.train_size // 8, 20), 400)
        return {"train": self.train_size, "validation": held_out, "test": held_out}

    def format(self, record: Record) -> Record:
        """A raw record -> ``{"inputs", "targets"}`` (keeps ``_where`` for error messages)."""
        if self.raw_input_key is not None:
            inputs = f"{self.prefix} {require_text(record, self.raw_input_key)}"
        else:
            inputs = format_fields(self.prefix, record, self.input_keys)
        out: Record = {"inputs": inputs, "targets": require_text(record, self.target_key)}
        if "_where" in record:
            out["_where"] = record["_where"]
        return out


def unique_splits(
    make_one: Callable[[random.Random], Record],
    sizes: dict[str, int],
    rng: random.Random,
    *,
    key: Callable[[Record], Any] | None = None,
) -> Splits:
    """Draw records until there are enough distinct ones, then deal them out to the splits.

    Distinct by ``key`` (default: all fields), so no example appears in two splits.
    """
    key = key or (lambda r: tuple(sorted((k, str(v)) for k, v in r.items())))
    need = sum(sizes.values())
    seen: set = set()
    records: list[Record] = []
    for _ in range(need * 50):
        record = make_one(rng)
        k = key(record)
        if k not in seen:
            seen.add(k)
            records.append(record)
            if len(records) == need:
                break
    else:
        raise RuntimeError(f"generator produced only {len(records)} distinct records of {need}")
    return deal(records, sizes)


def deal(records: list[Record], sizes: dict[str, int]) -> Splits:
    out: Splits = {}
    start = 0
    for split in SPLITS:
        out[split] = records[start : start + sizes[split]]
        start += sizes[split]
    return out


def grouped_splits(groups: list[list[Record]], sizes: dict[str, int], rng: random.Random) -> Splits:
    """Deal whole groups (e.g. all questions about one fact) to splits: no group is split.

    Held-out splits take about their share of the groups; train takes the rest (its size is
    then approximate, which is fine for closed-book QA whose size is set by the world).
    """
    groups = list(groups)
    rng.shuffle(groups)
    total = sum(sizes.values())
    out: Splits = {s: [] for s in SPLITS}
    n = len(groups)
    n_val = max(1, round(n * sizes["validation"] / total))
    n_test = max(1, round(n * sizes["test"] / total))
    for i, group in enumerate(groups):
        split = "validation" if i < n_val else "test" if i < n_val + n_test else "train"
        out[split].extend(group)
    for split in SPLITS:
        rng.shuffle(out[split])
    return out


def lower_first(sentence: str) -> str:
    """'The capital of X is Y.' -> 'the capital of X is Y' (names keep their capital)."""
    sentence = sentence.rstrip(".")
    first, _, rest = sentence.partition(" ")
    if first in ("The", "In", "Many", "People", "Biologists", "Compared", "Shops"):
        return f"{first.lower()} {rest}"
    return sentence
