"""Cut tokenized documents into the fixed-length chunks objectives work on (T5's token steps).

The T5 chain for pre-training is ``select_random_chunk`` (at most 65,536 tokens of a document)
-> ``reduce_concat_tokens`` (join 128 documents to avoid padding) -> ``split_tokens`` (pieces of
the objective's raw length). Each factory returns a preprocessor over the ``targets`` token
arrays; the chunks keep only that key (and ``passthrough_keys``), since document metadata no
longer applies to a piece of a concatenation.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np

from taskmix.data.task import Example, PreprocessContext, Preprocessor
from taskmix.errors import ConfigError


def _positive_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ConfigError(f"chunking parameter {name!r}: expected an int >= 1, got {value!r}")
    return value


def select_random_chunk(
    max_length: int = 65536,
    *,
    feature_key: str = "targets",
    passthrough_keys: Sequence[str] = (),
) -> Preprocessor:
    """Keep one random aligned window of at most ``max_length`` tokens of each document.

    As T5: the document is cut into ``ceil(n / max_length)`` windows at multiples of
    ``max_length`` and one is picked uniformly. Empty documents are dropped.
    """
    _positive_int("max_length", max_length)

    def select_random_chunk(examples: Iterator[Example], ctx: PreprocessContext):
        rng = ctx.rng(f"select_random_chunk:{feature_key}")
        for ex in examples:
            tokens = np.asarray(ex[feature_key])
            if tokens.size == 0:
                continue
            num_windows = math.ceil(tokens.size / max_length)
            start = max_length * int(rng.integers(num_windows))
            out = {k: ex[k] for k in passthrough_keys if k in ex}
            out[feature_key] = tokens[start : start + max_length]
            yield out

    return select_random_chunk


def reduce_concat_tokens(batch_size: int = 128, *, feature_key: str = "targets") -> Preprocessor:
    """Concatenate the tokens of each run of ``batch_size`` documents into one sequence."""
    _positive_int("batch_size", batch_size)

    def reduce_concat_tokens(examples: Iterator[Example], ctx: PreprocessContext):
        group: list[np.ndarray] = []
        for ex in examples:
            group.append(np.asarray(ex[feature_key], dtype=np.int32))
            if len(group) == batch_size:
                yield {feature_key: np.concatenate(group)}
                group = []
        if group:
            yield {feature_key: np.concatenate(group)}

    return reduce_concat_tokens


def split_tokens(
    max_tokens: int,
    *,
    min_tokens: int | None = None,
    feature_key: str = "targets",
    passthrough_keys: Sequence[str] = (),
) -> Preprocessor:
    """Split each sequence into consecutive pieces of ``max_tokens`` (the last may be shorter).

    With ``min_tokens`` each sequence draws one piece length log-uniformly from
    ``[min_tokens, max_tokens)`` (T5's ``split_tokens_to_random_length``). Empty sequences are
    dropped.
    """
    _positive_int("max_tokens", max_tokens)
    if min_tokens is not None:
        _positive_int("min_tokens", min_tokens)
        if min_tokens > max_tokens:
            raise ConfigError(
                f"chunking parameter 'min_tokens': expected <= max_tokens ({max_tokens}), "
                f"got {min_tokens}"
            )

    def split_tokens(examples: Iterator[Example], ctx: PreprocessContext):
        rng = ctx.rng(f"split_tokens:{feature_key}")
        for ex in examples:
            tokens = np.asarray(ex[feature_key])
            if tokens.size == 0:
                continue
            length = max_tokens
            if min_tokens is not None:
                low, high = math.log(min_tokens), math.log(max_tokens)
                length = max(1, int(math.exp(rng.uniform(low, high))))
            extra = {k: ex[k] for k in passthrough_keys if k in ex}
            for start in range(0, tokens.size, length):
                yield {**extra, feature_key: tokens[start : start + length]}

    return split_tokens
