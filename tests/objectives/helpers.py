"""Shared helpers for objective tests: a context, an in-memory text source, span reconstruction."""

from __future__ import annotations

import numpy as np

from taskmix.data.task import Feature, PreprocessContext
from taskmix.data.vocabulary import ByteVocabulary, Vocabulary

from ..data.helpers import ListSource

VOCAB = ByteVocabulary()
__all__ = ["VOCAB", "ListSource", "context", "reconstruct", "sentinel_order", "tokens_batch"]


def context(seed: int = 0, epoch: int = 0, **kwargs) -> PreprocessContext:
    features = {"inputs": Feature(VOCAB), "targets": Feature(VOCAB)}
    return PreprocessContext(
        task_name="t", split="train", output_features=features, seed=seed, epoch=epoch, **kwargs
    )


def tokens_batch(rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
    """Ordinary (non-special, non-sentinel) ids."""
    return rng.integers(3, VOCAB.base_vocab_size, (batch, length)).astype(np.int32)


def sentinel_order(ids, vocab: Vocabulary = VOCAB) -> list[int]:
    """The ``i`` of each ``<extra_id_i>`` in ``ids``, in order."""
    return [vocab.vocab_size - 1 - int(t) for t in ids if vocab.is_sentinel(int(t))]


def reconstruct(inputs, targets, vocab: Vocabulary = VOCAB) -> list[int]:
    """Replace each sentinel in inputs by the tokens after the same sentinel in targets."""
    spans: dict[int, list[int]] = {}
    current = None
    for t in map(int, targets):
        if vocab.is_sentinel(t):
            current = t
            spans[current] = []
        else:
            assert current is not None, "targets must start with a sentinel"
            spans[current].append(t)
    out: list[int] = []
    for t in map(int, inputs):
        out.extend(spans[t] if vocab.is_sentinel(t) else [t])
    return out
