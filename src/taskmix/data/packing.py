"""Packing: which examples share a row, and the vectorised arithmetic of segments in a batch.

Packing puts several short examples into one fixed-length row so that little of the batch is
padding (T5 packs to 512 tokens). Two parts, kept apart so each is easy to test:

* ``pack_first_fit`` decides *which* examples go into which row. It keeps a bounded window of
  open rows (memory stays bounded, the order is deterministic) and puts every example into the
  first open row with room for it. An example may have several streams (an encoder-decoder
  example has inputs and targets): it fits only if every stream fits in the same row.
* ``RowLayout`` and ``shift_right_per_segment`` build the NumPy arrays of a whole batch of rows
  with a few vectorised operations (no Python loop over tokens).
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Generic, TypeVar

import numpy as np

T = TypeVar("T")


class _OpenRow(Generic[T]):
    """A row that still accepts examples: its items and the free room left in each stream."""

    __slots__ = ("items", "free")

    def __init__(self, capacities: Sequence[int]):
        self.items: list[T] = []
        self.free = list(capacities)

    def add(self, item: T, sizes: Sequence[int]) -> None:
        self.items.append(item)
        self.free = list(map(operator.sub, self.free, sizes))

    def fill(self, capacities: Sequence[int]) -> float:
        """Share of the row already used, in its fullest stream (1.0 = cannot take anything)."""
        return max(1.0 - f / c for f, c in zip(self.free, capacities, strict=True))


def pack_first_fit(
    items: Iterable[tuple[T, Sequence[int]]],
    capacities: Sequence[int],
    max_open_rows: int = 16,
) -> Iterator[list[T]]:
    """Group ``(item, sizes)`` pairs into rows whose summed sizes fit ``capacities`` per stream.

    First fit over at most ``max_open_rows`` open rows, oldest first. When no open row has room
    and the window is full, the fullest row is emitted (ties: the oldest) and a new row opens.
    A row that can take no more (a stream with no free room; every example needs at least one
    token per stream) is emitted at once. Items keep their order of arrival within a row; rows
    still open at the end are emitted oldest first. ``max_open_rows=1`` is plain greedy packing
    that keeps the stream's order exactly.

    Every item must fit an empty row (callers truncate or drop long examples first).
    """
    capacities = tuple(int(c) for c in capacities)
    if not capacities or min(capacities) < 1:
        raise ValueError(f"capacities must be positive integers, got {capacities}")
    if max_open_rows < 1:
        raise ValueError(f"max_open_rows must be >= 1, got {max_open_rows}")
    fits = operator.le  # all(map(fits, sizes, free)): every stream has room (the hot loop)
    open_rows: list[_OpenRow[T]] = []
    for item, sizes in items:
        if len(sizes) != len(capacities) or not all(map(fits, sizes, capacities)):
            raise ValueError(f"item sizes {tuple(sizes)} do not fit capacities {capacities}")
        row = None
        for candidate in open_rows:
            if all(map(fits, sizes, candidate.free)):
                row = candidate
                break
        if row is None:
            if len(open_rows) == max_open_rows:
                fullest = max(range(len(open_rows)), key=lambda i: open_rows[i].fill(capacities))
                yield open_rows.pop(fullest).items
            row = _OpenRow(capacities)
            open_rows.append(row)
        row.add(item, sizes)
        if min(row.free) == 0:
            open_rows.remove(row)
            yield row.items
    for row in open_rows:
        yield row.items


class RowLayout:
    """Where every token of a batch of rows goes; computed once per stream, used by every feature.

    ``rows[r]`` lists the token arrays (segments) packed into row ``r``, in order. Per token (of
    all rows, flattened) it holds the segment id (1..k within its row), the position in its
    segment (restarting at 0) and the flat destination index in a ``(num_rows, length)`` array,
    so each feature is one vectorised scatter: no Python loop over tokens.
    """

    def __init__(self, rows: Sequence[Sequence[np.ndarray]], num_rows: int, length: int):
        if len(rows) > num_rows:
            raise ValueError(f"{len(rows)} rows do not fit a batch of {num_rows}")
        arrays: list[np.ndarray] = []
        seg_lengths: list[int] = []
        seg_ids: list[int] = []
        seg_starts: list[int] = []
        for r, row in enumerate(rows):
            offset = r * length
            for k, segment in enumerate(row, start=1):
                arrays.append(segment)
                seg_lengths.append(len(segment))
                seg_ids.append(k)
                seg_starts.append(offset)
                offset += len(segment)
            if offset > (r + 1) * length:
                raise ValueError(f"row {r} holds {offset - r * length} tokens > length {length}")
        lengths = np.asarray(seg_lengths, dtype=np.int64)
        self.shape = (num_rows, length)
        self.tokens = np.concatenate(arrays) if arrays else np.zeros(0, np.int32)
        first = np.cumsum(lengths) - lengths  # where each segment starts in ``tokens``
        self.positions = (np.arange(len(self.tokens)) - np.repeat(first, lengths)).astype(np.int32)
        self.segment_ids = np.repeat(np.asarray(seg_ids, dtype=np.int32), lengths)
        self.destination = (
            np.repeat(np.asarray(seg_starts, dtype=np.int64), lengths) + self.positions
        )
        self.segment_lengths = lengths

    def per_token(self, per_segment: Sequence[int]) -> np.ndarray:
        """A per-segment value (e.g. each example's prefix width) repeated over its tokens."""
        return np.repeat(np.asarray(per_segment, dtype=np.int64), self.segment_lengths)

    def scatter(self, values: np.ndarray) -> np.ndarray:
        """Per-token ``values`` placed into a zero (padding) int32 array of shape (rows, length)."""
        out = np.zeros(self.shape[0] * self.shape[1], dtype=np.int32)
        out[self.destination] = values
        return out.reshape(self.shape)


def shift_right_per_segment(tokens: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Teacher-forcing inputs: ``tokens`` shifted right by one, 0 at every segment's first token.

    ``tokens`` are segments laid end to end and ``positions`` their positions (0 where a segment
    starts), so a segment never sees the previous segment's last token (seqio's
    ``autoregressive_inputs`` with sequence ids).
    """
    shifted = np.zeros_like(tokens)
    shifted[1:] = tokens[:-1]
    shifted[positions == 0] = 0
    return shifted
