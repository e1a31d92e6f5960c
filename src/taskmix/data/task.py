"""Tasks: a source of raw records plus plain-function preprocessors that make text-to-text examples.

An *example* is a plain dict. Before tokenization it holds ``inputs`` and ``targets`` strings; the
``tokenize`` preprocessor replaces them with int32 token arrays and keeps the strings under
``inputs_pretokenized`` / ``targets_pretokenized``. Keys starting with ``_`` are bookkeeping
(``_where`` = "file:line" for error messages) and never reach the model.

A *preprocessor* is a plain function ``(examples: Iterator[dict], ctx: PreprocessContext) ->
Iterator[dict]``. Everything it may need (seed, split, vocabularies, sequence lengths, error
policy) comes in ``ctx``: no signature inspection. ``map_examples`` lifts a one-example function.
"""

from __future__ import annotations

import hashlib
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np

from taskmix.data.report import ErrorReport
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import RecordError

Example = dict[str, Any]
OnError = Literal["raise", "skip"]
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


def validate_name(name: str, what: str = "name") -> str:
    """Names become file and folder names (caches, expert libraries): keep them path-safe."""
    if not isinstance(name, str) or not NAME_PATTERN.match(name) or ".." in name:
        raise ValueError(
            f"invalid {what} {name!r}: use letters, digits, '_', '-' and '.', starting with a "
            "letter or digit (it becomes part of file paths)"
        )
    return name


def stable_seed(*parts: Any) -> int:
    """A 63-bit seed derived from any values; the same on every machine and Python run."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class Feature:
    """An output feature (``inputs`` or ``targets``): its vocabulary and whether EOS is appended."""

    vocabulary: Vocabulary
    add_eos: bool = True
    required: bool = True


@dataclass
class PreprocessContext:
    """What a preprocessor may depend on. One context serves one pass over one split of one task."""

    task_name: str
    split: str
    output_features: Mapping[str, Feature]
    seed: int | None = None
    epoch: int = 0
    shard_index: int = 0
    num_shards: int = 1
    sequence_length: Mapping[str, int] | None = None
    on_error: OnError = "raise"
    report: ErrorReport = field(default_factory=ErrorReport)

    def rng(self, salt: str) -> np.random.Generator:
        """A generator that depends on (seed, epoch, shard, salt): replaying a pass replays it."""
        base = 0 if self.seed is None else self.seed
        return np.random.default_rng(
            stable_seed(base, self.task_name, self.split, self.epoch, self.shard_index, salt)
        )

    def handle(self, error: RecordError) -> None:
        """Raise, or count the skipped record in the report, as the task's ``on_error`` says."""
        if self.on_error == "raise":
            raise error
        self.report.skip(error)


Preprocessor = Callable[[Iterator[Example], PreprocessContext], Iterator[Example]]


def map_examples(fn: Callable[[Example], Example | None]) -> Preprocessor:
    """Lift a one-example function into a preprocessor. Returning None drops the example.

    A drop is deliberate (a filter), so it is not an error, but it is never silent: it is
    counted in the pass's report as ``dropped["<fn name> returned None"]``, with the record's
    ``_where`` among the report's first messages. A ``RecordError`` the function raises is
    re-raised with the record's ``_where``, or skipped and counted (``on_error: skip``).
    """
    name = getattr(fn, "__name__", "map_examples")
    drop_reason = f"{name} returned None"

    def preprocessor(examples: Iterator[Example], ctx: PreprocessContext) -> Iterator[Example]:
        for ex in examples:
            try:
                out = fn(ex)
            except RecordError as err:
                if err.where is None and "_where" in ex:
                    err = RecordError(err.reason, where=ex["_where"], field=err.field)
                ctx.handle(err)
                continue
            if out is None:
                ctx.report.drop(drop_reason, where=ex.get("_where"))
                continue
            yield out

    preprocessor.__name__ = name
    preprocessor.__qualname__ = preprocessor.__name__
    return preprocessor


def _tokenize(examples: Iterator[Example], ctx: PreprocessContext, add_eos: bool):
    for ex in examples:
        out = dict(ex)
        for key, feature in ctx.output_features.items():
            text = ex.get(key)
            if not isinstance(text, str):
                continue  # absent (checked by the feature converter) or already tokenized
            ids = feature.vocabulary.encode(text)
            if add_eos and feature.add_eos:
                ids.append(feature.vocabulary.eos_id)
            out[key] = np.asarray(ids, dtype=np.int32)
            out[f"{key}_pretokenized"] = text
        yield out


def tokenize(examples: Iterator[Example], ctx: PreprocessContext) -> Iterator[Example]:
    """Encode each output feature's text; keep the text as ``<key>_pretokenized``; append EOS."""
    return _tokenize(examples, ctx, add_eos=True)


def tokenize_no_eos(examples: Iterator[Example], ctx: PreprocessContext) -> Iterator[Example]:
    """Encode without EOS: for objectives that cut token sequences, then call ``append_eos``."""
    return _tokenize(examples, ctx, add_eos=False)


def append_eos(examples: Iterator[Example], ctx: PreprocessContext) -> Iterator[Example]:
    """Append EOS to already-tokenized features (after objectives that work on token ids)."""
    for ex in examples:
        out = dict(ex)
        for key, feature in ctx.output_features.items():
            if feature.add_eos and key in out and not isinstance(out[key], str):
                eos = feature.vocabulary.eos_id
                out[key] = np.concatenate([np.asarray(out[key], np.int32), [eos]]).astype(np.int32)
        yield out


class Source(ABC):
    """Where raw records come from. Implementations stream; none needs a whole file in memory."""

    @property
    @abstractmethod
    def splits(self) -> Sequence[str]: ...

    @abstractmethod
    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        """Yield records (dicts with a ``_where`` key) of one split, in a fixed order.

        With ``num_shards > 1`` only the records whose position ``i`` has ``i % num_shards ==
        shard_index``: shards are disjoint and together hold every record.
        """

    @abstractmethod
    def num_records(self, split: str) -> int:
        """Number of records in a split (computed once, then cached)."""

    def data_files(self) -> list[Path]:
        """The local files behind every split (none for generated or hub data): what a run
        folder records, by size and modification time, to notice data that changed later."""
        return []

    def check_split(self, split: str) -> None:
        if split not in self.splits:
            raise KeyError(f"unknown split {split!r}; this source has {list(self.splits)}")


def shuffle_buffer(
    items: Iterable[Example], size: int, rng: np.random.Generator
) -> Iterator[Example]:
    """Seeded streaming shuffle (as tf.data's): memory is bounded by ``size``."""
    buffer: list[Example] = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    order = rng.permutation(len(buffer))
    for j in order:
        yield buffer[j]


@dataclass
class Task:
    """A named text-to-text problem: source, preprocessors, features, postprocessor, metrics."""

    name: str
    source: Source
    preprocessors: Sequence[Preprocessor]
    output_features: Mapping[str, Feature]
    family: str = "other"
    postprocessor: Callable[[str, Example], Any] | None = None
    metric_names: Sequence[str] = ()
    description: str = ""
    on_error: OnError = "raise"
    shuffle_buffer_size: int = 10_000
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        validate_name(self.name, "task name")

    @property
    def splits(self) -> Sequence[str]:
        return self.source.splits

    def num_input_examples(self, split: str) -> int:
        """Records in the source split: what mixing rates are computed from (as seqio does).

        This counts every record, malformed ones included: with ``on_error: skip`` a task
        yields fewer examples per epoch than its count, but is sampled by the count (knowing
        the valid count would take a full preprocessing pass). The reports say how many were
        skipped; ``scale`` in the mixture corrects a task whose share matters.
        """
        return self.source.num_records(split)

    def make_context(self, split: str, **kwargs: Any) -> PreprocessContext:
        return PreprocessContext(
            task_name=self.name,
            split=split,
            output_features=self.output_features,
            on_error=self.on_error,
            **kwargs,
        )

    def get_dataset(
        self,
        split: str,
        *,
        seed: int | None = None,
        epoch: int = 0,
        shard_index: int = 0,
        num_shards: int = 1,
        sequence_length: Mapping[str, int] | None = None,
        report: ErrorReport | None = None,
        pretokenized: bool = False,
    ) -> Iterator[Example]:
        """One pass over a split. ``seed=None`` keeps file order; a seed shuffles it reproducibly.

        ``pretokenized=True`` stops before the first tokenize step (text, for display and for
        training a tokenizer on tasks).

        The pass depends only on (seed, epoch, shard): iterating it again yields the same
        examples in the same order, which is what makes mixture streams restorable.
        """
        self.source.check_split(split)
        ctx = self.make_context(
            split,
            seed=seed,
            epoch=epoch,
            shard_index=shard_index,
            num_shards=num_shards,
            sequence_length=sequence_length,
            report=report if report is not None else ErrorReport(),
        )
        examples: Iterator[Example] = self.source.iter_records(
            split, ctx, shard_index=shard_index, num_shards=num_shards
        )
        if seed is not None:
            examples = shuffle_buffer(examples, self.shuffle_buffer_size, ctx.rng("shuffle"))
        for preprocessor in self.preprocessors:
            if pretokenized and preprocessor in (tokenize, tokenize_no_eos):
                break
            examples = preprocessor(examples, ctx)
        return examples

    def with_vocabulary(self, vocabulary: Vocabulary) -> Task:
        """A copy of this task whose features all use ``vocabulary`` (e.g. one trained by the demo)."""
        features = {k: replace(f, vocabulary=vocabulary) for k, f in self.output_features.items()}
        return replace(self, output_features=features)

    def postprocess(self, prediction: str, example: Example | None = None) -> Any:
        if self.postprocessor is None:
            return prediction
        return self.postprocessor(prediction, example or {})
