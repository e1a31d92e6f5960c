"""The common machinery of objectives: buffer examples, corrupt a batch at once, yield in order.

An objective is a preprocessor ``(examples, ctx) -> examples``. It reads ``targets`` (token ids
WITHOUT EOS, e.g. after ``tokenize_no_eos`` and chunking), and writes ``inputs`` / ``targets``
token arrays; ``append_eos`` follows it. Subclasses implement ``apply`` on one
``int32[batch, length]`` array; the base class groups buffered examples by length so that every
``apply`` call sees equal-length rows (after chunking almost all rows share one length).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping
from numbers import Real
from typing import Any

import numpy as np

from taskmix.data.task import Example, PreprocessContext
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError, RecordError
from taskmix.objectives.transforms import Ragged

# Keys whose text no longer matches the corrupted token arrays.
_STALE_KEYS = ("inputs_pretokenized", "targets_pretokenized")


def check_range(
    name: str, value: float, low: float, high: float, *, closed_low=True, closed_high=True
) -> None:
    """Raise ``ConfigError`` naming the parameter unless ``low <(=) value <(=) high``."""
    if isinstance(value, bool) or not isinstance(value, Real) or value != value:  # NaN
        raise ConfigError(f"objective parameter {name!r}: expected a number, got {value!r}")
    ok = (low <= value if closed_low else low < value) and (
        value <= high if closed_high else value < high
    )
    if not ok:
        left, right = "[" if closed_low else "(", "]" if closed_high else ")"
        raise ConfigError(
            f"objective parameter {name!r}: expected a value in {left}{low}, {high}{right}, "
            f"got {value!r}"
        )


class Objective(ABC):
    """A pre-training objective; call it as a preprocessor, or ``apply`` it to a token batch."""

    name: str = "objective"
    #: Whether ``apply`` produces an ``inputs`` feature (False for decoder-only LM).
    has_inputs: bool = True

    def __init__(self, *, batch_size: int = 128):
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ConfigError(
                f"objective parameter 'batch_size': expected an int >= 1, got {batch_size!r}"
            )
        self.batch_size = batch_size

    # -- what subclasses provide ------------------------------------------------------------

    @abstractmethod
    def apply(
        self, tokens: np.ndarray, vocabulary: Vocabulary, rng: np.random.Generator
    ) -> tuple[Ragged | None, Ragged]:
        """Corrupt ``tokens`` (``int32[batch, length]``): returns (inputs, targets)."""

    def params(self) -> dict[str, Any]:
        """The objective's settings (shown by the CLI, stored in task metadata)."""
        return {"batch_size": self.batch_size}

    def raw_length(self, sequence_length: Mapping[str, int]) -> int:
        """Tokens per chunk fed to this objective so its outputs (+EOS) fit ``sequence_length``.

        Default: inputs keep one token per raw token, so ``inputs`` length minus the EOS.
        """
        return int(sequence_length["inputs"]) - 1

    def check(self, vocabulary: Vocabulary, sequence_length: Mapping[str, int] | None) -> None:
        """Raise ``ConfigError`` early when settings cannot work (hook for subclasses)."""
        return None

    # -- the preprocessor -------------------------------------------------------------------

    def __call__(self, examples: Iterator[Example], ctx: PreprocessContext) -> Iterator[Example]:
        vocabulary = self._vocabulary(ctx)
        self.check(vocabulary, ctx.sequence_length)
        rng = ctx.rng(f"objective:{self.name}")
        buffer: list[tuple[Example, np.ndarray]] = []
        for ex in examples:
            tokens = self._tokens(ex, ctx)
            if tokens is None:
                continue
            buffer.append((ex, tokens))
            if len(buffer) >= self.batch_size:
                yield from self._flush(buffer, vocabulary, rng)
                buffer = []
        if buffer:
            yield from self._flush(buffer, vocabulary, rng)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params().items())
        return f"{self.name}({args})"

    def _vocabulary(self, ctx: PreprocessContext) -> Vocabulary:
        features = ctx.output_features
        if "targets" not in features:
            raise ConfigError(
                f"task {ctx.task_name!r}: objective {self.name} needs a 'targets' output feature"
            )
        vocabulary = features["targets"].vocabulary
        if self.has_inputs and "inputs" in features and features["inputs"].vocabulary != vocabulary:
            raise ConfigError(
                f"task {ctx.task_name!r}: objective {self.name} builds inputs from the targets "
                "tokens, so 'inputs' and 'targets' must share one vocabulary"
            )
        return vocabulary

    def _tokens(self, ex: Example, ctx: PreprocessContext) -> np.ndarray | None:
        tokens = ex.get("targets")
        where = ex.get("_where")
        if tokens is None or isinstance(tokens, str):
            what = "is missing" if tokens is None else "is text"
            ctx.handle(
                RecordError(
                    f"{what}; objective {self.name} needs token ids "
                    "(put tokenize_no_eos before it)",
                    where=where,
                    field="targets",
                )
            )
            return None
        tokens = np.asarray(tokens)
        if tokens.ndim != 1 or not np.issubdtype(tokens.dtype, np.integer):
            ctx.handle(
                RecordError(
                    f"expected a 1-d integer token array, got shape {tokens.shape} of {tokens.dtype}",
                    where=where,
                    field="targets",
                )
            )
            return None
        if tokens.size == 0:
            ctx.report.drop(f"empty targets before {self.name}", where=where)
            return None
        return tokens.astype(np.int32, copy=False)

    def _flush(
        self,
        buffer: list[tuple[Example, np.ndarray]],
        vocabulary: Vocabulary,
        rng: np.random.Generator,
    ) -> Iterator[Example]:
        lengths = np.array([len(tokens) for _, tokens in buffer])
        outputs: list[tuple[np.ndarray | None, np.ndarray] | None] = [None] * len(buffer)
        for length in np.unique(lengths):  # sorted: the rng is consumed in a fixed order
            index = np.flatnonzero(lengths == length)
            batch = np.stack([buffer[i][1] for i in index])
            inputs, targets = self.apply(batch, vocabulary, rng)
            input_rows = inputs.rows() if inputs is not None else [None] * len(index)
            for i, inp, tgt in zip(index, input_rows, targets.rows(), strict=True):
                outputs[i] = (inp, tgt)
        for (ex, _), result in zip(buffer, outputs, strict=True):
            assert result is not None
            out = {k: v for k, v in ex.items() if k not in _STALE_KEYS}
            inputs, out["targets"] = result
            if inputs is None:
                out.pop("inputs", None)
            else:
                out["inputs"] = inputs
            yield out


def check_sentinels(num_spans: int, vocabulary: Vocabulary, objective: str, length: int) -> None:
    """Unique sentinels run out after ``num_extra_ids``: fail loudly instead of reusing word ids."""
    if num_spans > vocabulary.num_extra_ids:
        raise ConfigError(
            f"objective {objective}: a chunk of {length} tokens has {num_spans} corrupted spans "
            f"but the vocabulary has only {vocabulary.num_extra_ids} sentinels; use a shorter "
            "input length, a lower noise_density or a longer mean_noise_span_length"
        )
