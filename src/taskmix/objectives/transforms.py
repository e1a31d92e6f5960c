"""Turn (tokens, noise mask) batches into inputs or targets, as T5's ``inputs_fn``/``targets_fn``.

All functions take ``tokens: int32[batch, length]`` and ``mask: bool[batch, length]``. Those that
keep the length return an array of the same shape; those that drop tokens return a ``Ragged``
(one flat array plus per-row lengths) because rows may shrink by different amounts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Ragged:
    """Rows of different lengths stored flat: row ``i`` is ``values[offsets[i]:offsets[i + 1]]``."""

    values: np.ndarray
    lengths: np.ndarray

    @classmethod
    def select(cls, array: np.ndarray, keep: np.ndarray) -> Ragged:
        """Keep, row by row and in order, the entries of ``array`` where ``keep`` is True."""
        return cls(array[keep].astype(np.int32, copy=False), keep.sum(axis=1))

    @classmethod
    def from_dense(cls, array: np.ndarray) -> Ragged:
        batch, length = array.shape
        return cls(array.reshape(-1).astype(np.int32, copy=False), np.full(batch, length))

    def rows(self) -> list[np.ndarray]:
        """One array per row (views into ``values``; copied so each example owns its tokens)."""
        ends = np.cumsum(self.lengths)
        return [row.copy() for row in np.split(self.values, ends[:-1])]


def _shift_right(mask: np.ndarray) -> np.ndarray:
    """``out[:, i] = mask[:, i - 1]``, with False in the first column."""
    out = np.zeros_like(mask)
    out[:, 1:] = mask[:, :-1]
    return out


def count_spans(mask: np.ndarray) -> np.ndarray:
    """Number of runs of True per row."""
    return (mask & ~_shift_right(mask)).sum(axis=1)


def noise_span_to_unique_sentinel(
    tokens: np.ndarray, mask: np.ndarray, first_sentinel_id: int
) -> Ragged:
    """Replace the k-th run of noise tokens in each row by sentinel ``first_sentinel_id - k``.

    With ``first_sentinel_id = vocabulary.sentinel_id(0)`` the runs become ``<extra_id_0>``,
    ``<extra_id_1>``, ... in order (ids decreasing), as in T5.
    """
    previous = _shift_right(mask)
    first = mask & ~previous
    span_number = np.cumsum(first, axis=1)  # 1 at the first run's start, 2 at the second, ...
    replaced = np.where(first, first_sentinel_id + 1 - span_number, tokens)
    return Ragged.select(replaced, ~(mask & previous))


def nonnoise_span_to_unique_sentinel(
    tokens: np.ndarray, mask: np.ndarray, first_sentinel_id: int
) -> Ragged:
    """The targets side of span corruption: non-noise runs become the unique sentinels."""
    return noise_span_to_unique_sentinel(tokens, ~mask, first_sentinel_id)


def drop_noise_tokens(tokens: np.ndarray, mask: np.ndarray) -> Ragged:
    return Ragged.select(tokens, ~mask)


def drop_nonnoise_tokens(tokens: np.ndarray, mask: np.ndarray) -> Ragged:
    return Ragged.select(tokens, mask)


def noise_token_to_sentinel(tokens: np.ndarray, mask: np.ndarray, sentinel_id: int) -> np.ndarray:
    """Every noise token becomes the same mask token (MASS-style)."""
    return np.where(mask, np.int32(sentinel_id), tokens).astype(np.int32)


def noise_token_to_random_token_or_sentinel(
    tokens: np.ndarray,
    mask: np.ndarray,
    sentinel_id: int,
    rng: np.random.Generator,
    *,
    random_prob: float,
    low: int,
    high: int,
) -> np.ndarray:
    """Each noise token becomes a random id in ``[low, high)`` with ``random_prob``, else the mask.

    T5's BERT-style corruption: no "keep the original" branch (the random id may still happen to
    equal the original).
    """
    use_random = rng.random(tokens.shape) < random_prob
    random_ids = rng.integers(low, high, size=tokens.shape, dtype=np.int64)
    out = np.where(mask, np.int64(sentinel_id), tokens)
    out = np.where(mask & use_random, random_ids, out)
    return out.astype(np.int32)


def permute_noise_tokens(
    tokens: np.ndarray, mask: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """Shuffle the noise tokens of each row among the noise positions; others stay in place."""
    batch, length = tokens.shape
    keys = np.where(mask, rng.random((batch, length)), np.inf)
    shuffled_sources = np.argsort(keys, axis=1)  # noise positions in random order come first
    ordered_targets = np.argsort(~mask, axis=1, kind="stable")  # noise positions in order first
    valid = np.arange(length)[None, :] < mask.sum(axis=1)[:, None]
    rows = np.broadcast_to(np.arange(batch)[:, None], (batch, length))
    out = tokens.copy()
    out[rows[valid], ordered_targets[valid]] = tokens[rows[valid], shuffled_sources[valid]]
    return out
