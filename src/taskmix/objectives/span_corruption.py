"""Span corruption (T5's default objective) and its i.i.d. variant, "replace corrupted spans".

Inputs: the text with each corrupted span replaced by one unique sentinel, ``<extra_id_0>``,
``<extra_id_1>``, ... in order. Targets: each sentinel followed by the span it replaced (T5's
``noise_span_to_unique_sentinel`` / ``nonnoise_span_to_unique_sentinel`` pair)::

    tokens : Thank you for inviting me to your party last week
    inputs : Thank you <extra_id_0> me to your party <extra_id_1>
    targets: <extra_id_0> for inviting <extra_id_1> last week

With the random-spans mask the last span is always noise, so targets end with a span and then
EOS: length = noise tokens + spans + 1, as ``random_spans_helper`` computes.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError
from taskmix.objectives.base import Objective, check_range, check_sentinels
from taskmix.objectives.noise import (
    iid_noise_mask,
    random_spans_helper,
    random_spans_noise_mask,
    span_counts,
)
from taskmix.objectives.transforms import (
    Ragged,
    count_spans,
    noise_span_to_unique_sentinel,
    nonnoise_span_to_unique_sentinel,
)


class SpanCorruption(Objective):
    """Replace corrupted spans by unique sentinels; ``mean_noise_span_length=None`` = i.i.d. mask.

    ``input_length`` (else ``ctx.sequence_length["inputs"]``) only sets ``raw_length`` and the
    up-front checks; cutting chunks to that length is ``split_tokens``' job, before this step.
    """

    def __init__(
        self,
        noise_density: float = 0.15,
        mean_noise_span_length: float | None = 3.0,
        input_length: int | None = None,
        *,
        name: str = "span_corruption",
        batch_size: int = 128,
    ):
        super().__init__(batch_size=batch_size)
        self.name = name
        check_range("noise_density", noise_density, 0.0, 1.0, closed_low=False)
        if mean_noise_span_length is not None:
            if noise_density >= 1.0:
                raise ConfigError(
                    "objective parameter 'noise_density': span corruption keeps at least one "
                    f"token, expected a value in (0, 1), got {noise_density!r}"
                )
            check_range("mean_noise_span_length", mean_noise_span_length, 1.0, float("inf"))
        if input_length is not None and (not isinstance(input_length, int) or input_length < 2):
            raise ConfigError(
                f"objective parameter 'input_length': expected an int >= 2, got {input_length!r}"
            )
        self.noise_density = float(noise_density)
        self.mean_noise_span_length = (
            None if mean_noise_span_length is None else float(mean_noise_span_length)
        )
        self.input_length = input_length

    def params(self) -> dict[str, Any]:
        return {
            "noise_density": self.noise_density,
            "mean_noise_span_length": self.mean_noise_span_length,
            "input_length": self.input_length,
            **super().params(),
        }

    def _input_length(self, sequence_length: Mapping[str, int] | None) -> int | None:
        if self.input_length is not None:
            return self.input_length
        if sequence_length and "inputs" in sequence_length:
            return int(sequence_length["inputs"])
        return None

    def lengths(self, sequence_length: Mapping[str, int] | None = None) -> tuple[int, int]:
        """(raw tokens per chunk, targets length incl. EOS) for the configured input length."""
        input_length = self._input_length(sequence_length)
        if input_length is None:
            raise ConfigError(
                f"objective {self.name}: no input length; pass input_length= or give the task a "
                "sequence_length with 'inputs'"
            )
        if self.mean_noise_span_length is None:
            # i.i.d. noise: lengths vary per row; T5 cuts chunks to the inputs length minus EOS
            # and uses the same length for targets (which are much shorter at low density).
            return input_length - 1, input_length
        return random_spans_helper(input_length, self.noise_density, self.mean_noise_span_length)

    def raw_length(self, sequence_length: Mapping[str, int]) -> int:
        return self.lengths(sequence_length)[0]

    def check(self, vocabulary: Vocabulary, sequence_length: Mapping[str, int] | None) -> None:
        if self.mean_noise_span_length is None or self._input_length(sequence_length) is None:
            return
        raw, targets_length = self.lengths(sequence_length)
        _, num_spans = span_counts(raw, self.noise_density, self.mean_noise_span_length)
        check_sentinels(num_spans, vocabulary, self.name, raw)
        configured = (sequence_length or {}).get("targets")
        if configured is not None and int(configured) < targets_length:
            raise ConfigError(
                f"objective {self.name}: targets need {targets_length} tokens for inputs "
                f"length {self._input_length(sequence_length)}, but sequence_length['targets'] "
                f"is {configured}"
            )

    def noise_mask(self, batch: int, length: int, rng: np.random.Generator) -> np.ndarray:
        if self.mean_noise_span_length is None:
            return iid_noise_mask(batch, length, self.noise_density, rng)
        return random_spans_noise_mask(
            batch, length, self.noise_density, self.mean_noise_span_length, rng
        )

    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[Ragged, Ragged]:
        batch, length = tokens.shape
        mask = self.noise_mask(batch, length, rng)
        if self.mean_noise_span_length is None:
            most = int(max(count_spans(mask).max(), count_spans(~mask).max(), 0))
        else:
            most = span_counts(length, self.noise_density, self.mean_noise_span_length)[1]
        check_sentinels(most, vocabulary, self.name, length)
        first = vocabulary.sentinel_id(0)
        return (
            noise_span_to_unique_sentinel(tokens, mask, first),
            nonnoise_span_to_unique_sentinel(tokens, mask, first),
        )


def span_corruption(
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    input_length: int | None = None,
    *,
    batch_size: int = 128,
) -> SpanCorruption:
    """T5's default objective (random spans, density 0.15, mean span length 3)."""
    return SpanCorruption(
        noise_density, mean_noise_span_length, input_length, batch_size=batch_size
    )


def replace_spans(
    noise_density: float = 0.15,
    mean_noise_span_length: float = 3.0,
    input_length: int | None = None,
    *,
    batch_size: int = 128,
) -> SpanCorruption:
    """The paper's "replace spans" row: the same algorithm as span corruption, under its name."""
    return SpanCorruption(
        noise_density,
        mean_noise_span_length,
        input_length,
        name="replace_spans",
        batch_size=batch_size,
    )


def iid_denoising(noise_density: float = 0.15, *, batch_size: int = 128) -> SpanCorruption:
    """ "Replace corrupted spans" with an i.i.d. mask: each run of corrupted tokens -> a sentinel.

    Kept exactly as T5's ``iid_denoising``: when a row starts with a corrupted token the targets
    start with that token (not a sentinel), so sentinels in inputs and targets are offset by one
    in that row; rows ending with clean tokens get a final sentinel in the targets.
    """
    return SpanCorruption(noise_density, None, None, name="iid_denoising", batch_size=batch_size)
