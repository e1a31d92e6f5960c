"""Feature converters: tokenized examples -> fixed-shape model batches (seqio's feature names).

Tasks stay independent of the architecture: a task yields ``{"inputs", "targets"}`` int32 token
arrays that already end in EOS; a converter turns a stream of them into the arrays one
architecture reads, packing several examples per row when ``pack=True``.

* ``EncDecFeatureConverter`` - encoder-decoder (T5): ``encoder_*`` from inputs, ``decoder_*`` from
  targets.
* ``DecoderOnlyFeatureConverter`` - a decoder-only LM on ``inputs ++ targets``.
* ``PrefixLMFeatureConverter`` - the same, loss on targets only, plus
  ``decoder_causal_attention`` marking the prefix that may be attended fully visibly.

Every converter always emits ``*_segment_ids`` and ``*_positions``: with packing they separate
the examples of a row; without packing a row holds one example (segment id 1 on its tokens, 0 on
padding) so the model reads one layout either way. See docs/feature_converters.md.

With ``task_names`` a converter also emits ``encoder_task_ids`` (enc-dec) and
``decoder_task_ids``: per token, which task (the example's ``_task``, as a mixture stream tags
it) the token comes from, as ``1 + index`` into ``task_names``; 0 is padding (and an example of
no listed task). Models do not read them: the trainer takes them out of the batch and sums the
loss per task with them (``training.task_losses``); a task head (MT-DNN) may route by them.

Too-long examples are truncated (cut to the length, EOS is *not* re-added, as in seqio) or
dropped, as ``overflow`` says, and counted in ``converter.report`` - never silently. The
counts are per example prepared (an example drawn again in a later epoch counts again) and are
the converter's state: ``state_dict`` / ``load_state_dict`` carry them across a resume.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from taskmix.data.packing import RowLayout, pack_first_fit, shift_right_per_segment
from taskmix.data.report import ErrorReport
from taskmix.errors import RecordError

Batch = dict[str, np.ndarray]
Overflow = Literal["truncate", "drop"]
OnError = Literal["raise", "skip"]

# One prepared example: its token streams (one per packed stream), the prefix width (the
# number of leading "inputs" tokens in a decoder-only sequence; 0 for encoder-decoder) and its
# task id (1 + index into the converter's task_names; 0 when not tagged).
Prepared = tuple[tuple[np.ndarray, ...], int, int]

# Per-token task ids: features the model does not take (the trainer pops them).
TASK_FEATURES = ("encoder_task_ids", "decoder_task_ids")


_INT32_MAX = int(np.iinfo(np.int32).max)


def _as_tokens(example: dict[str, Any], key: str) -> np.ndarray:
    """The example's ``key`` as a 1-D int32 array; RecordError naming where it came from."""
    value = example[key]
    if type(value) is np.ndarray and value.dtype == np.int32 and value.ndim == 1:
        # fast path: what ``tokenize`` produces; only negative ids need checking
        if value.size and value.min() < 0:
            raise RecordError(
                "token ids must lie in [0, 2**31)", where=example.get("_where"), field=key
            )
        return value
    where = example.get("_where")
    if isinstance(value, str):
        raise RecordError(
            "is text, not token ids: run the tokenize step first", where=where, field=key
        )
    array = np.asarray(value)
    if array.ndim != 1 or not (array.size == 0 or array.dtype.kind in "iu"):
        raise RecordError(
            f"expected a 1-D integer token array, got shape {array.shape} dtype {array.dtype}",
            where=where,
            field=key,
        )
    if array.size and (array.min() < 0 or array.max() > _INT32_MAX):
        raise RecordError("token ids must lie in [0, 2**31)", where=where, field=key)
    return array.astype(np.int32, copy=False)


class FeatureConverter(ABC):
    """Base class: validation, truncation, packing and batching shared by every architecture.

    Subclasses say which token streams an example has (``_streams``) and how rows of prepared
    examples become model features (``build_batch``).
    """

    FEATURES: tuple[str, ...] = ()  # the model features, in order
    _task_sides: tuple[str, ...] = ("decoder",)  # the sides that get a ``{side}_task_ids``

    def __init__(
        self,
        *,
        pack: bool = True,
        overflow: Overflow = "truncate",
        max_open_rows: int = 16,
        report: ErrorReport | None = None,
        on_error: OnError = "raise",
        task_names: Sequence[str] | None = None,
    ):
        if overflow not in ("truncate", "drop"):
            raise ValueError(f"overflow must be 'truncate' or 'drop', got {overflow!r}")
        if on_error not in ("raise", "skip"):
            raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")
        if max_open_rows < 1:
            raise ValueError(f"max_open_rows must be >= 1, got {max_open_rows}")
        self.pack = pack
        self.overflow = overflow
        self.max_open_rows = max_open_rows
        self.report = report if report is not None else ErrorReport()
        self.on_error = on_error
        # task name -> id (1-based: 0 is padding); None: no task id features
        self.task_ids = (
            None if task_names is None else {name: i + 1 for i, name in enumerate(task_names)}
        )

    # ----- what subclasses define -----------------------------------------------------------

    @property
    @abstractmethod
    def stream_lengths(self) -> tuple[int, ...]:
        """Row length of each packed stream (enc-dec: inputs, targets; decoder-only: one)."""

    @property
    @abstractmethod
    def stream_names(self) -> tuple[str, ...]:
        """Names of the streams, used as keys in the truncation / drop counts."""

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The features every row and batch holds (the model's, then any task ids)."""
        if self.task_ids is None:
            return self.FEATURES
        return (*self.FEATURES, *(f"{side}_task_ids" for side in self._task_sides))

    @abstractmethod
    def _streams(self, example: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], int]:
        """The example's untruncated token streams and prefix width (raises RecordError)."""

    @abstractmethod
    def build_batch(
        self, rows: Sequence[Sequence[Prepared]], num_rows: int, lengths: Sequence[int]
    ) -> Batch:
        """Model features, int32 arrays of shape (num_rows, stream length), of packed rows.

        ``rows[r]`` lists the examples of row ``r``; rows past ``len(rows)`` stay all zero.
        """

    def _add_task_ids(
        self, batch: Batch, rows: Sequence[Sequence[Prepared]], layouts: Sequence[RowLayout]
    ) -> None:
        """``{side}_task_ids`` (when the converter has task names): each example's task id
        over its tokens, 0 on padding."""
        if self.task_ids is None:
            return
        tasks = [task for row in rows for _, _, task in row]
        for side, layout in zip(self._task_sides, layouts, strict=True):
            batch[f"{side}_task_ids"] = layout.scatter(layout.per_token(tasks))

    # ----- state -----------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """The converter's only state, its counts, so they survive a resume (JSON-ready)."""
        return {"report": self.report.state_dict()}

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore the counts into ``self.report`` (the same object: references stay valid)."""
        if not isinstance(state, Mapping) or "report" not in state:
            raise ValueError(f"not a feature converter state (no 'report'): {state!r:.200}")
        self.report.load_state_dict(state["report"])

    # ----- shared machinery -----------------------------------------------------------------

    def prepare(self, example: dict[str, Any]) -> Prepared | None:
        """Validate, then truncate or drop an over-long example (counted); None = skip it."""
        try:
            streams, prefix = self._streams(example)
        except RecordError as err:
            if self.on_error == "raise":
                raise
            self.report.skip(err)
            return None
        too_long = [
            name
            for name, s, n in zip(self.stream_names, streams, self.stream_lengths, strict=True)
            if len(s) > n
        ]
        task = 0 if self.task_ids is None else self.task_ids.get(example.get("_task"), 0)
        if not too_long:
            return streams, prefix, task
        if self.overflow == "drop":
            self.report.dropped[too_long[0]] += 1
            return None
        for name in too_long:
            self.report.truncated[name] += 1
        cut = tuple(s[:n] for s, n in zip(streams, self.stream_lengths, strict=True))
        return cut, min(prefix, len(cut[0])), task

    def _prepared(self, examples: Iterable[dict[str, Any]]) -> Iterator[Prepared]:
        for example in examples:
            item = self.prepare(example)
            if item is not None:
                yield item

    def _rows(self, examples: Iterable[dict[str, Any]]) -> Iterator[list[Prepared]]:
        """The examples of each row: packed first fit, or one example per row."""
        prepared = self._prepared(examples)
        if not self.pack:
            return ([item] for item in prepared)
        sized = ((item, tuple(len(s) for s in item[0])) for item in prepared)
        return pack_first_fit(sized, self.stream_lengths, self.max_open_rows)

    def pack_rows(self, examples: Iterable[dict[str, Any]]) -> Iterator[Batch]:
        """Stream single rows (dicts of 1-D int32 arrays), packed when ``pack=True``."""
        for row in self._rows(examples):
            batch = self.build_batch([row], 1, self.stream_lengths)
            yield {name: array[0] for name, array in batch.items()}

    def iter_batches(
        self, examples: Iterable[dict[str, Any]], batch_size: int, *, drop_remainder: bool = False
    ) -> Iterator[Batch]:
        """Stream batches of ``batch_size`` rows (dicts of 2-D int32 arrays).

        The last partial batch is filled with all-zero rows (no tokens, no loss), or dropped with
        ``drop_remainder=True``. Each batch is built in one vectorised pass over its tokens.
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        rows: list[list[Prepared]] = []
        for row in self._rows(examples):
            rows.append(row)
            if len(rows) == batch_size:
                yield self.build_batch(rows, batch_size, self.stream_lengths)
                rows = []
        if rows and not drop_remainder:
            yield self.build_batch(rows, batch_size, self.stream_lengths)

    def pad_batch_to_longest(self, examples: Iterable[dict[str, Any]]) -> Batch:
        """One unpacked batch padded to its longest example (the baseline HF collators use).

        Truncation or dropping still applies at the converter's lengths, so the result is
        comparable with the packed batches.
        """
        items = list(self._prepared(examples))
        if not items:
            raise ValueError("pad_batch_to_longest needs at least one example")
        lengths = [max(len(item[0][i]) for item in items) for i in range(len(self.stream_lengths))]
        return self.build_batch([[item] for item in items], len(items), lengths)


def _require(example: dict[str, Any], key: str) -> np.ndarray:
    """A feature the converter cannot do without: present and at least one token (EOS)."""
    where = example.get("_where")
    if key not in example:
        raise RecordError("missing (the feature converter needs it)", where=where, field=key)
    tokens = _as_tokens(example, key)
    if tokens.size == 0:
        raise RecordError("is empty; it should hold at least EOS", where=where, field=key)
    return tokens


def _layout(rows: Sequence[Sequence[Prepared]], stream: int, num_rows: int, length: int):
    return RowLayout([[item[0][stream] for item in row] for row in rows], num_rows, length)


class EncDecFeatureConverter(FeatureConverter):
    """Encoder-decoder features: inputs -> ``encoder_*``, targets -> ``decoder_*``.

    When packing, an example's inputs and targets go into the same row and get the same segment
    id, so the decoder's segment k attends to the encoder's segment k only.
    """

    FEATURES = (
        "encoder_input_tokens",
        "encoder_segment_ids",
        "encoder_positions",
        "decoder_input_tokens",
        "decoder_target_tokens",
        "decoder_loss_weights",
        "decoder_segment_ids",
        "decoder_positions",
    )

    _task_sides = ("encoder", "decoder")

    def __init__(self, input_length: int, target_length: int, pack: bool = True, **kwargs: Any):
        if input_length < 1 or target_length < 1:
            raise ValueError(
                f"input_length and target_length must be >= 1, got {input_length}, {target_length}"
            )
        super().__init__(pack=pack, **kwargs)
        self.input_length = int(input_length)
        self.target_length = int(target_length)

    @property
    def stream_lengths(self) -> tuple[int, ...]:
        return (self.input_length, self.target_length)

    @property
    def stream_names(self) -> tuple[str, ...]:
        return ("inputs", "targets")

    def _streams(self, example: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], int]:
        return (_require(example, "inputs"), _require(example, "targets")), 0

    def build_batch(
        self, rows: Sequence[Sequence[Prepared]], num_rows: int, lengths: Sequence[int]
    ) -> Batch:
        enc = _layout(rows, 0, num_rows, lengths[0])
        dec = _layout(rows, 1, num_rows, lengths[1])
        batch = {
            "encoder_input_tokens": enc.scatter(enc.tokens),
            "encoder_segment_ids": enc.scatter(enc.segment_ids),
            "encoder_positions": enc.scatter(enc.positions),
            "decoder_input_tokens": dec.scatter(shift_right_per_segment(dec.tokens, dec.positions)),
            "decoder_target_tokens": dec.scatter(dec.tokens),
            "decoder_loss_weights": dec.scatter(1),
            "decoder_segment_ids": dec.scatter(dec.segment_ids),
            "decoder_positions": dec.scatter(dec.positions),
        }
        self._add_task_ids(batch, rows, (enc, dec))
        return batch


class DecoderOnlyFeatureConverter(FeatureConverter):
    """Decoder-only LM features on the sequence ``inputs ++ targets`` (inputs may be absent).

    With ``loss_on_targets_only`` the loss covers only the targets part of each sequence;
    otherwise every real token (as a plain LM). Truncation cuts the concatenated sequence to
    ``length`` (so a long prefix can leave an example with few or no target tokens, as in seqio).
    """

    FEATURES = (
        "decoder_input_tokens",
        "decoder_target_tokens",
        "decoder_loss_weights",
        "decoder_segment_ids",
        "decoder_positions",
    )

    def __init__(
        self, length: int, pack: bool = True, loss_on_targets_only: bool = False, **kwargs: Any
    ):
        if length < 1:
            raise ValueError(f"length must be >= 1, got {length}")
        super().__init__(pack=pack, **kwargs)
        self.length = int(length)
        self.loss_on_targets_only = loss_on_targets_only

    @property
    def stream_lengths(self) -> tuple[int, ...]:
        return (self.length,)

    @property
    def stream_names(self) -> tuple[str, ...]:
        return ("inputs+targets",)

    def _streams(self, example: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], int]:
        targets = _require(example, "targets")
        if "inputs" not in example:
            return (targets,), 0
        inputs = _as_tokens(example, "inputs")
        return (np.concatenate([inputs, targets]),), len(inputs)

    def build_batch(
        self, rows: Sequence[Sequence[Prepared]], num_rows: int, lengths: Sequence[int]
    ) -> Batch:
        layout = _layout(rows, 0, num_rows, lengths[0])
        # each example's number of leading "inputs" tokens, repeated over its tokens
        prefix = layout.per_token([prefix for row in rows for _, prefix, _ in row])
        weights = layout.positions >= prefix if self.loss_on_targets_only else 1
        shifted = shift_right_per_segment(layout.tokens, layout.positions)
        batch = {
            "decoder_input_tokens": layout.scatter(shifted),
            "decoder_target_tokens": layout.scatter(layout.tokens),
            "decoder_loss_weights": layout.scatter(weights),
            "decoder_segment_ids": layout.scatter(layout.segment_ids),
            "decoder_positions": layout.scatter(layout.positions),
        }
        self._extra_features(batch, layout, prefix)
        self._add_task_ids(batch, rows, (layout,))
        return batch

    def _extra_features(self, batch: Batch, layout: RowLayout, prefix: np.ndarray) -> None:
        """Hook for subclasses that add features computed from the prefix widths."""


class PrefixLMFeatureConverter(DecoderOnlyFeatureConverter):
    """Prefix LM: loss on targets only, and ``decoder_causal_attention`` over the prefix.

    ``decoder_causal_attention`` is 1 on the inputs part of each segment *and* the first target
    position (where the last input token is read and the first target token predicted), 0
    elsewhere and on padding - seqio's definition. The model lets those positions attend to
    each other fully visibly and keeps the rest causal.
    """

    FEATURES = (*DecoderOnlyFeatureConverter.FEATURES, "decoder_causal_attention")

    def __init__(self, length: int, pack: bool = True, **kwargs: Any):
        super().__init__(length, pack=pack, loss_on_targets_only=True, **kwargs)

    def _streams(self, example: dict[str, Any]) -> tuple[tuple[np.ndarray, ...], int]:
        if "inputs" not in example:
            raise RecordError(
                "missing (a prefix LM needs inputs as its prefix)",
                where=example.get("_where"),
                field="inputs",
            )
        return super()._streams(example)

    def _extra_features(self, batch: Batch, layout: RowLayout, prefix: np.ndarray) -> None:
        batch["decoder_causal_attention"] = layout.scatter(layout.positions <= prefix)


def pad_batch_to_longest(
    examples: Iterable[dict[str, Any]], converter: FeatureConverter | None = None
) -> Batch:
    """The no-packing baseline: one batch padded to its longest example.

    Without a converter, encoder-decoder features with no length limit (what HF's
    ``DataCollatorForSeq2Seq`` produces, with seqio's feature names).
    """
    if converter is None:
        converter = EncDecFeatureConverter(_INT32_MAX, _INT32_MAX, pack=False)
    return converter.pad_batch_to_longest(examples)


def to_torch(batch: Batch, device: Any = None, dtype: Any = None) -> dict[str, Any]:
    """A batch as torch tensors on ``device`` (default dtype ``torch.long``, what embeddings and
    cross-entropy expect). Torch is imported here so data workers need not load it."""
    import torch

    dtype = torch.long if dtype is None else dtype
    return {k: torch.from_numpy(v).to(device=device, dtype=dtype) for k, v in batch.items()}
