"""Noise masks for a whole batch of equal-length token sequences, and T5's length helper.

Each mask function returns a boolean array ``[batch, length]`` (True = corrupted) and draws all
its randomness from the ``numpy.random.Generator`` it is given, so a seeded pass replays exactly.
Semantics follow ``t5.data.preprocessors`` (``random_spans_noise_mask``, ``iid_noise_mask``,
``random_prefix_noise_mask``, ``random_spans_helper``); the work is done with sorts and cumulative
sums over the batch instead of a Python loop per sequence.

Rounding: T5 rounds half to even (``tf.round`` and Python ``round``); so do we (``round``).
"""

from __future__ import annotations

import numpy as np


def span_counts(
    length: int, noise_density: float, mean_noise_span_length: float
) -> tuple[int, int]:
    """(noise tokens, noise spans) that ``random_spans_noise_mask`` uses for a sequence length.

    ``num_noise = round(length * density)`` clamped to ``[1, length - 1]``;
    ``num_spans = max(1, round(num_noise / mean_noise_span_length))``. ``length`` below 2 is
    treated as 2 (T5's guard against degenerate masks; the mask is cut back afterwards).
    Spans are also capped at the number of non-noise tokens, which T5 cannot split into more
    non-empty segments (e.g. 3 tokens at density 0.5, mean span length 1); T5 fails there.
    """
    length = max(int(length), 2)
    num_noise = min(max(round(length * noise_density), 1), length - 1)
    num_spans = max(round(num_noise / mean_noise_span_length), 1)
    num_spans = min(num_spans, length - num_noise)
    return num_noise, num_spans


def random_segmentation(
    batch: int, num_items: int, num_segments: int, rng: np.random.Generator
) -> np.ndarray:
    """Split ``num_items`` into ``num_segments`` non-empty parts, uniformly over all splits.

    Returns ``int64[batch, num_segments]`` whose rows sum to ``num_items``. Equivalent to T5's
    shuffle of ``num_segments - 1`` "first in segment" flags over ``num_items - 1`` gaps: here each
    row picks its cut points as the ``num_segments - 1`` smallest of fresh uniform keys.
    """
    if not 1 <= num_segments <= num_items:
        raise ValueError(f"need 1 <= num_segments ({num_segments}) <= num_items ({num_items})")
    num_cuts = num_segments - 1
    bounds = np.empty((batch, num_segments + 1), dtype=np.int64)
    bounds[:, 0] = 0
    bounds[:, -1] = num_items
    if num_cuts:
        keys = rng.random((batch, num_items - 1))
        if num_cuts < num_items - 1:
            cuts = np.argpartition(keys, num_cuts - 1, axis=1)[:, :num_cuts]
        else:
            cuts = np.broadcast_to(np.arange(num_items - 1), (batch, num_items - 1))
        bounds[:, 1:-1] = np.sort(cuts, axis=1) + 1  # gap g lies before item g + 1
    return np.diff(bounds, axis=1)


def random_spans_noise_mask(
    batch: int,
    length: int,
    noise_density: float,
    mean_noise_span_length: float,
    rng: np.random.Generator,
) -> np.ndarray:
    """T5's span-corruption mask: alternating non-noise / noise spans, starting with non-noise.

    Every row has exactly the same number of noise tokens and noise spans (see ``span_counts``);
    within those constraints all masks are equally likely. Because the pattern always ends with
    a noise span, the last token of every sequence of length >= 2 is noise (as in T5).
    """
    orig_length = length
    length = max(length, 2)
    num_noise, num_spans = span_counts(length, noise_density, mean_noise_span_length)
    noise_lengths = random_segmentation(batch, num_noise, num_spans, rng)
    nonnoise_lengths = random_segmentation(batch, length - num_noise, num_spans, rng)
    # Row-major interleaving [nonnoise_0, noise_0, nonnoise_1, ...] of every row, flattened:
    # repeating False/True by those lengths writes each row's mask in one pass.
    interleaved = np.stack([nonnoise_lengths, noise_lengths], axis=2).reshape(-1)
    pattern = np.tile(np.array([False, True]), batch * num_spans)
    is_noise = np.repeat(pattern, interleaved).reshape(batch, length)
    return is_noise[:, :orig_length]


def iid_noise_mask(
    batch: int, length: int, noise_density: float, rng: np.random.Generator
) -> np.ndarray:
    """Each token corrupted independently with probability ``noise_density``."""
    return rng.random((batch, length)) < noise_density


def random_prefix_noise_mask(
    batch: int, length: int, rng: np.random.Generator, noise_density: float = 0.5
) -> np.ndarray:
    """Noise = a prefix of random length in ``[1, length - 1]`` (0 when ``length`` is 1).

    As in T5 the *noise is the prefix* (prefix LM makes it the inputs), and on average it is a
    fraction ``noise_density`` of the sequence. At 0.5 the length is uniform over
    ``[1, length - 1]``, exactly T5's mask (T5 accepts no other density). Otherwise it is
    uniform over the widest window centred on ``noise_density * length`` that fits in
    ``[1, length - 1]``: a continuous uniform on ``[c - w, c + w]`` rounded to the nearest
    integer, where ``c`` is that centre and ``w = min(c - 0.5, length - 0.5 - c)``, so that
    every split point in the window is equally likely and the mean stays at ``c``.
    """
    high = length - 1
    if high < 1:
        return np.zeros((batch, length), dtype=bool)
    if noise_density == 0.5:  # T5's distribution, drawn as before so seeded passes replay
        prefix = rng.integers(1, high + 1, size=batch)
    else:
        centre = min(max(noise_density * length, 1.0), float(high))
        half_width = min(centre - 0.5, length - 0.5 - centre)
        draws = centre + half_width * rng.uniform(-1.0, 1.0, size=batch)
        prefix = np.clip(np.floor(draws + 0.5).astype(np.int64), 1, high)
    return np.arange(length)[None, :] < prefix[:, None]


def random_spans_helper(
    inputs_length: int,
    noise_density: float,
    mean_noise_span_length: float,
    extra_tokens_per_span_inputs: int = 1,
    extra_tokens_per_span_targets: int = 1,
) -> tuple[int, int]:
    """(raw tokens per chunk, targets length) so span-corrupted inputs fill ``inputs_length``.

    Both lengths count the EOS appended after the objective. The raw length is the largest one
    whose inputs (non-noise tokens + one sentinel per span + EOS) still fit; targets length is
    noise tokens + one sentinel per span + EOS. At density 0.5 T5 shaves one token so targets
    do not exceed inputs; we do the same.
    """
    if inputs_length < 2:
        raise ValueError(f"inputs_length must be >= 2, got {inputs_length}")

    def lengths(tokens_length: int) -> tuple[int, int]:
        num_noise = round(tokens_length * noise_density)
        num_spans = round(num_noise / mean_noise_span_length)
        return (
            tokens_length - num_noise + num_spans * extra_tokens_per_span_inputs + 1,
            num_noise + num_spans * extra_tokens_per_span_targets + 1,
        )

    tokens_length = inputs_length - 1
    while lengths(tokens_length + 1)[0] <= inputs_length:
        tokens_length += 1
    inputs, targets = lengths(tokens_length)
    if noise_density == 0.5 and targets > inputs:
        tokens_length -= 1
        targets -= 1
    return tokens_length, targets
