"""The other objectives of T5's comparison: drop tokens, BERT/MASS-style, deshuffling, (prefix) LM.

Examples below use "Thank you for inviting me to your party last week" (``<M>`` = the mask token,
which is ``<extra_id_0>`` as in T5).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError
from taskmix.objectives.base import Objective, check_range
from taskmix.objectives.noise import (
    iid_noise_mask,
    random_prefix_noise_mask,
    random_spans_noise_mask,
)
from taskmix.objectives.transforms import (
    Ragged,
    drop_noise_tokens,
    drop_nonnoise_tokens,
    noise_token_to_random_token_or_sentinel,
    permute_noise_tokens,
)

# Ids below this are pad/eos/unk; random replacement tokens never use them (T5's default).
NUM_RESERVED_TOKENS = 3


class DropTokens(Objective):
    """Drop corrupted tokens: inputs = the kept tokens, targets = the dropped ones, in order.

    ``Thank you me to your party week`` -> ``for inviting last``.
    """

    name = "drop_tokens"

    def __init__(
        self,
        noise_density: float = 0.15,
        mean_noise_span_length: float | None = None,
        *,
        batch_size: int = 128,
    ):
        super().__init__(batch_size=batch_size)
        check_range("noise_density", noise_density, 0.0, 1.0, closed_low=False)
        if mean_noise_span_length is not None:
            check_range("mean_noise_span_length", mean_noise_span_length, 1.0, float("inf"))
        self.noise_density = float(noise_density)
        self.mean_noise_span_length = mean_noise_span_length

    def params(self) -> dict[str, Any]:
        return {
            "noise_density": self.noise_density,
            "mean_noise_span_length": self.mean_noise_span_length,
            **super().params(),
        }

    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[Ragged, Ragged]:
        batch, length = tokens.shape
        if self.mean_noise_span_length is None:
            mask = iid_noise_mask(batch, length, self.noise_density, rng)
        else:
            mask = random_spans_noise_mask(
                batch, length, self.noise_density, self.mean_noise_span_length, rng
            )
        return drop_noise_tokens(tokens, mask), drop_nonnoise_tokens(tokens, mask)


class BertStyle(Objective):
    """Corrupt i.i.d. tokens: each becomes a random token (``random_prob``) or the mask token.

    Targets are the original text. T5's variant (``noise_token_to_random_token_or_sentinel``)
    has no "keep the original" branch: 15% corrupted, of those 90% ``<M>`` and 10% random.
    ``Thank you <M> <M> me to your party apple week`` -> the original sentence.

    T5 draws random ids from ``[3, vocab_size)``, sentinels included; by default we draw from the
    ordinary ids ``[3, base_vocab_size)`` (``random_tokens_include_sentinels=True`` restores T5's).
    """

    name = "bert_style"

    def __init__(
        self,
        noise_density: float = 0.15,
        random_prob: float = 0.1,
        *,
        random_tokens_include_sentinels: bool = False,
        name: str = "bert_style",
        batch_size: int = 128,
    ):
        super().__init__(batch_size=batch_size)
        check_range("noise_density", noise_density, 0.0, 1.0, closed_low=False)
        check_range("random_prob", random_prob, 0.0, 1.0)
        self.name = name
        self.noise_density = float(noise_density)
        self.random_prob = float(random_prob)
        self.random_tokens_include_sentinels = bool(random_tokens_include_sentinels)

    def params(self) -> dict[str, Any]:
        return {
            "noise_density": self.noise_density,
            "random_prob": self.random_prob,
            "random_tokens_include_sentinels": self.random_tokens_include_sentinels,
            **super().params(),
        }

    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[Ragged, Ragged]:
        batch, length = tokens.shape
        mask = iid_noise_mask(batch, length, self.noise_density, rng)
        high = (
            vocabulary.vocab_size
            if self.random_tokens_include_sentinels
            else vocabulary.base_vocab_size
        )
        if high <= NUM_RESERVED_TOKENS:
            raise ConfigError(f"objective {self.name}: the vocabulary has no ordinary tokens")
        inputs = noise_token_to_random_token_or_sentinel(
            tokens,
            mask,
            vocabulary.sentinel_id(0),
            rng,
            random_prob=self.random_prob,
            low=NUM_RESERVED_TOKENS,
            high=high,
        )
        return Ragged.from_dense(inputs), Ragged.from_dense(tokens)


class Deshuffling(Objective):
    """Inputs: the tokens shuffled (the corrupted fraction of them); targets: the original.

    ``party me for your to last fun you inviting week Thank`` -> the original sentence.
    ``noise_density=1.0`` (default) shuffles every token, as in the paper.
    """

    name = "deshuffling"

    def __init__(self, noise_density: float = 1.0, *, batch_size: int = 128):
        super().__init__(batch_size=batch_size)
        check_range("noise_density", noise_density, 0.0, 1.0, closed_low=False)
        self.noise_density = float(noise_density)

    def params(self) -> dict[str, Any]:
        return {"noise_density": self.noise_density, **super().params()}

    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[Ragged, Ragged]:
        batch, length = tokens.shape
        if self.noise_density >= 1.0:
            order = np.argsort(rng.random((batch, length)), axis=1)
            shuffled = np.take_along_axis(tokens, order, axis=1)
        else:
            mask = iid_noise_mask(batch, length, self.noise_density, rng)
            shuffled = permute_noise_tokens(tokens, mask, rng)
        return Ragged.from_dense(shuffled), Ragged.from_dense(tokens)


class PrefixLM(Objective):
    """Split at a random point in ``[1, L - 1]``: inputs = prefix, targets = the rest.

    ``Thank you for inviting`` -> ``me to your party last week``.

    ``noise_density`` is the mean fraction of the chunk in the prefix (the inputs): T5's
    ``random_prefix_noise_mask`` calls the prefix the noise. The default 0.5 is T5's split,
    uniform over ``[1, L - 1]``; see ``random_prefix_noise_mask`` for other densities.
    """

    name = "prefix_lm"

    def __init__(self, noise_density: float = 0.5, *, batch_size: int = 128):
        super().__init__(batch_size=batch_size)
        check_range("noise_density", noise_density, 0.0, 1.0, closed_low=False, closed_high=False)
        self.noise_density = float(noise_density)

    def params(self) -> dict[str, Any]:
        return {"noise_density": self.noise_density, **super().params()}

    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[Ragged, Ragged]:
        batch, length = tokens.shape
        prefix = random_prefix_noise_mask(batch, length, rng, self.noise_density)
        return drop_nonnoise_tokens(tokens, prefix), drop_noise_tokens(tokens, prefix)


class LanguageModel(Objective):
    """Decoder-only LM: the whole chunk is the target and there is no ``inputs`` feature."""

    name = "lm"
    has_inputs = False

    def raw_length(self, sequence_length: Mapping[str, int]) -> int:
        return int(sequence_length["targets"]) - 1

    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[None, Ragged]:
        return None, Ragged.from_dense(tokens)


def drop_tokens(
    noise_density: float = 0.15,
    mean_noise_span_length: float | None = None,
    *,
    batch_size: int = 128,
) -> DropTokens:
    return DropTokens(noise_density, mean_noise_span_length, batch_size=batch_size)


def bert_style(
    noise_density: float = 0.15,
    random_prob: float = 0.1,
    *,
    random_tokens_include_sentinels: bool = False,
    batch_size: int = 128,
) -> BertStyle:
    return BertStyle(
        noise_density,
        random_prob,
        random_tokens_include_sentinels=random_tokens_include_sentinels,
        batch_size=batch_size,
    )


def mass_style(noise_density: float = 0.15, *, batch_size: int = 128) -> BertStyle:
    """BERT-style without random-token replacement: every corrupted token becomes ``<M>``."""
    return BertStyle(noise_density, 0.0, name="mass_style", batch_size=batch_size)


def deshuffling(noise_density: float = 1.0, *, batch_size: int = 128) -> Deshuffling:
    return Deshuffling(noise_density, batch_size=batch_size)


def prefix_lm(noise_density: float = 0.5, *, batch_size: int = 128) -> PrefixLM:
    return PrefixLM(noise_density, batch_size=batch_size)


def lm(*, batch_size: int = 128) -> LanguageModel:
    return LanguageModel(batch_size=batch_size)
