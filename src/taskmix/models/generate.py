"""Greedy decoding with a key/value cache, logit-averaging ensembles and rank classification.

T5 evaluates with greedy decoding (SPEC §5); an ensemble averages the models' logits before the
softmax at every step (SPEC §8); rank classification scores every label option (SPEC §1).

Every path runs the model's own modules, so a wrapped, hooked or replaced layer (an adapter, a
task head) counts in decoding and scoring exactly as in training. The cached decoder runs the
encoder once and then, per step, the newest token through ``model.decoder`` with a key/value
cache (``kv_cache``): the self-attention keys/values go into preallocated buffers, the
cross-attention ones are computed once. The fast paths live in the modules themselves
(``packed``: oneDNN-packed and fused projection weights, made inside ``packed_weights()``).
Rows that have produced EOS are dropped from the batch ("compaction") so that the remaining
steps only pay for the rows still decoding. A model with an attention layer replaced by one
that takes no cache decodes without it (re-running the prefix each step, same output).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from taskmix.errors import TaskmixError
from taskmix.models import masks
from taskmix.models.decoder_only import DecoderOnlyLM
from taskmix.models.layers import mask_to_bias
from taskmix.models.lm_decoding import CachedLMDecoder, UncachedLMDecoder
from taskmix.models.packed import packed_weights
from taskmix.models.t5 import T5Model

# Compact the batch once at least this fraction of its rows are finished: gathering the caches
# costs about a step's worth of copying, so doing it for every single finished row does not pay.
COMPACT_FRACTION = 0.125


@torch.inference_mode()
def greedy_decode(
    model: T5Model | DecoderOnlyLM,
    encoder_input_tokens: torch.Tensor,
    *,
    max_length: int = 64,
    use_cache: bool = True,
    eos_id: int | None = None,
    compact: bool = True,
) -> torch.Tensor:
    """Generated ids (B, T <= max_length), without the start token; after a row's EOS the rest
    of the row is padding (0). Stops early once every row has produced EOS. ``compact`` drops
    finished rows from the batch (same output, less work); off only for testing.

    For a ``DecoderOnlyLM`` (decoder-only or prefix LM) ``encoder_input_tokens`` are the inputs
    the LM feature converters put before the targets (right-padded); the ids returned are the
    targets that follow them."""
    return ensemble_greedy(
        [model],
        encoder_input_tokens,
        max_length=max_length,
        use_cache=use_cache,
        eos_id=eos_id,
        compact=compact,
    )


@torch.inference_mode()
def ensemble_greedy(
    models: Sequence[T5Model | DecoderOnlyLM],
    encoder_input_tokens: torch.Tensor,
    *,
    max_length: int = 64,
    use_cache: bool = True,
    eos_id: int | None = None,
    compact: bool = True,
) -> torch.Tensor:
    """Greedy decoding where every step's logits are the mean of the models' logits."""
    if not models:
        raise TaskmixError("ensemble_greedy: need at least one model")
    for m in models:
        if not isinstance(m, T5Model | DecoderOnlyLM):
            raise TaskmixError(
                f"greedy decoding supports T5Model and DecoderOnlyLM, got {type(m).__name__}"
            )
    vocab = {m.config.vocab_size for m in models}
    if len(vocab) != 1:
        raise TaskmixError(
            f"ensemble models must share a vocabulary, got vocab sizes {sorted(vocab)}"
        )
    if max_length < 1:
        raise TaskmixError(f"max_length: expected >= 1, got {max_length}")
    modes = [m.training for m in models]
    for m in models:
        m.eval()  # no dropout while decoding; restored below
    try:
        with packed_weights():
            return _greedy_loop(
                models, encoder_input_tokens.long(), max_length, use_cache, eos_id, compact
            )
    finally:
        for m, mode in zip(models, modes, strict=True):
            m.train(mode)


def _greedy_loop(
    models: Sequence[T5Model | DecoderOnlyLM],
    tokens: torch.Tensor,
    max_length: int,
    use_cache: bool,
    eos_id: int | None,
    compact: bool,
) -> torch.Tensor:
    config = models[0].config
    eos = config.eos_token_id if eos_id is None else eos_id
    pad = config.pad_token_id
    batch, device = tokens.shape[0], tokens.device
    states = [_decoder_state(m, tokens, max_length, use_cache) for m in models]

    out = torch.full((batch, max_length), pad, dtype=torch.long, device=device)
    rows = torch.arange(batch, device=device)  # the output row of each batch position
    current = torch.full((batch,), config.decoder_start_token_id, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    steps = 0
    for t in range(max_length):
        logits = states[0].step(current, t)
        for state in states[1:]:
            logits = logits + state.step(current, t)
        if len(states) > 1:
            logits = logits / len(states)
        current = logits.argmax(-1).masked_fill_(finished, pad)
        out[rows, t] = current
        finished |= current == eos
        steps = t + 1
        done = int(finished.sum())  # one host sync per step, also needed to stop early
        if done == len(rows):
            break
        if compact and done >= COMPACT_FRACTION * len(rows):
            keep = (~finished).nonzero()[:, 0]
            rows, current, finished = rows[keep], current[keep], finished[keep]
            for state in states:
                state.keep(keep)
    return out[:, :steps]


def _decoder_state(model, tokens: torch.Tensor, max_length: int, use_cache: bool):
    """The per-model decoding state: ``step(current, t) -> logits`` and ``keep(index)``."""
    if use_cache and not model.decoder.supports_cache():
        warnings.warn(
            f"{type(model).__name__}: a decoder layer does not take a key/value cache; "
            "decoding without one (same output, slower)",
            RuntimeWarning,
            stacklevel=4,
        )
        use_cache = False
    if isinstance(model, DecoderOnlyLM):
        kind = CachedLMDecoder if use_cache else UncachedLMDecoder
        return kind(model, tokens, max_length)
    if use_cache:
        return _CachedDecoder(model, tokens, max_length)
    return _UncachedDecoder(model, tokens, model.encode(tokens), max_length)


class _UncachedDecoder:
    """Reference path: re-runs the whole decoder prefix every step."""

    def __init__(
        self, model: T5Model, tokens: torch.Tensor, encoder_hidden: torch.Tensor, max_length: int
    ):
        self.model, self.tokens, self.encoder_hidden = model, tokens, encoder_hidden
        self.prefix = torch.zeros(
            tokens.shape[0], max_length, dtype=torch.long, device=tokens.device
        )

    def step(self, current: torch.Tensor, t: int) -> torch.Tensor:
        self.prefix[:, t] = current
        logits = self.model.decode(self.encoder_hidden, self.tokens, self.prefix[:, : t + 1])
        return logits[:, -1]

    def keep(self, index: torch.Tensor) -> None:
        self.tokens, self.encoder_hidden = self.tokens[index], self.encoder_hidden[index]
        self.prefix = self.prefix[index]


class _CachedDecoder:
    """Incremental decoding through the model's own modules: each step embeds the newest token
    and runs ``model.decoder`` on it with a ``KVCache`` (see ``kv_cache``), then
    ``model.logits``. The encoder runs once (``model.encode``, real tokens only), and the
    decoder's bias tables are built once for the whole length."""

    def __init__(self, model: T5Model, tokens: torch.Tensor, max_length: int):
        self.model = model
        self.encoder_hidden = model.encode(tokens, skip_padding=True)
        batch, enc_len = tokens.shape
        heads, dtype = model.config.num_heads, self.encoder_hidden.dtype
        # Expanded to (B, H, ...) once so that attention takes them as (B * H) rows without a
        # copy per step. The self-attention table is (T, B, H, T), so that step t's rows (the
        # same for every batch row) are one contiguous block.
        cross_bias = mask_to_bias(masks.cross_mask(tokens, None, None), dtype)  # (B, 1, 1, L)
        self.cross_bias = cross_bias.expand(batch, heads, 1, enc_len).contiguous()
        positions = torch.arange(max_length, device=tokens.device)[None, :]
        bias = model.decoder.position_bias(positions, positions).to(dtype)  # (1, H, T, T)
        self.self_bias = bias.expand(batch, -1, -1, -1).permute(2, 0, 1, 3).contiguous()
        self.cache = model.decoder.new_cache(max_length)

    def step(self, current: torch.Tensor, t: int) -> torch.Tensor:
        """Logits (B, vocab) for the token after ``current``, the token at decoder position t;
        step t's query sees keys 0..t, so no causal mask is needed."""
        batch = current.shape[0]
        x = self.model.shared(current[:, None])  # (B, 1, D)
        self_bias = self.self_bias[t, :batch, :, None, : t + 1]  # (B, H, 1, t + 1)
        hidden = self.model.decoder(
            x, self_bias, self.encoder_hidden, self.cross_bias, cache=self.cache
        )
        return self.model.logits(hidden[:, 0])

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the batch rows ``index`` (finished rows are dropped)."""
        self.cache.keep(index)
        self.encoder_hidden = self.encoder_hidden.index_select(0, index)
        self.cross_bias = self.cross_bias.index_select(0, index)


# --- rank classification -------------------------------------------------------------------
@dataclass
class OptionScores:
    """``scores[i][j]``: summed log-likelihood of option j for input i; ``best[i]``: its argmax."""

    scores: list[list[float]]
    best: list[int]


@torch.inference_mode()
def score_options(
    model: T5Model | DecoderOnlyLM,
    inputs: Sequence[Sequence[int]],
    options: Sequence[Sequence[int]] | Sequence[Sequence[Sequence[int]]],
    *,
    batch_size: int = 64,
) -> OptionScores:
    """Rank classification: the log-likelihood of every candidate target given each input.

    ``options`` is either one list of candidate token sequences shared by all inputs (e.g. the
    label words, each ending in EOS) or one such list per input. Decoder-only models score the
    option after the input (prefix-LM models see the input fully)."""
    per_input = _options_per_input(inputs, options)
    pairs = [(i, j) for i, opts in enumerate(per_input) for j in range(len(opts))]
    flat_scores: list[float] = []
    was_training = model.training
    model.eval()
    try:
        with packed_weights():
            for start in range(0, len(pairs), batch_size):
                chunk = pairs[start : start + batch_size]
                flat_scores.extend(
                    _score_pairs(
                        model, [inputs[i] for i, _ in chunk], [per_input[i][j] for i, j in chunk]
                    )
                )
    finally:
        model.train(was_training)
    scores: list[list[float]] = [[] for _ in inputs]
    for (i, _), score in zip(pairs, flat_scores, strict=True):
        scores[i].append(score)
    best = [max(range(len(row)), key=row.__getitem__) for row in scores]
    return OptionScores(scores=scores, best=best)


def _options_per_input(inputs, options) -> list[list[list[int]]]:
    if not options:
        raise TaskmixError("score_options: options is empty")
    if all(isinstance(tok, int) for tok in options[0]):  # one shared list of token sequences
        shared = [list(o) for o in options]
        per_input = [shared for _ in inputs]
    else:
        if len(options) != len(inputs):
            raise TaskmixError(
                f"score_options: {len(options)} option lists for {len(inputs)} inputs (expected one per input)"
            )
        per_input = [[list(o) for o in opts] for opts in options]
    for i, opts in enumerate(per_input):
        if not opts or any(len(o) == 0 for o in opts):
            raise TaskmixError(f"score_options: input {i} has no options or an empty option")
    return per_input


def _pad(rows: list[list[int]], device) -> torch.Tensor:
    width = max(len(r) for r in rows)
    out = torch.zeros(len(rows), width, dtype=torch.long, device=device)
    for i, row in enumerate(rows):
        out[i, : len(row)] = torch.tensor(row, dtype=torch.long)
    return out


def _score_pairs(model, inputs: list[Sequence[int]], targets: list[list[int]]) -> list[float]:
    device = model.shared.weight.device
    start = model.config.decoder_start_token_id
    if isinstance(model, T5Model):
        targets_t = _pad(targets, device)
        decoder_inputs = F.pad(targets_t, (1, 0), value=start)[:, :-1]
        logits = model(_pad([list(x) for x in inputs], device), decoder_inputs, targets_t).logits
        lengths = torch.tensor([len(t) for t in targets], device=device)[:, None]
        weights = torch.arange(targets_t.shape[1], device=device)[None] < lengths
    else:
        rows = [list(x) + t for x, t in zip(inputs, targets, strict=True)]
        targets_t = _pad(rows, device)
        decoder_inputs = F.pad(targets_t, (1, 0), value=start)[:, :-1]
        positions = torch.arange(targets_t.shape[1], device=device)[None]
        in_len = torch.tensor([len(x) for x in inputs], device=device)[:, None]
        total = torch.tensor([len(r) for r in rows], device=device)[:, None]
        weights = (positions >= in_len) & (positions < total)
        prefix = (positions <= in_len).long() if model.config.architecture == "prefix_lm" else None
        logits = model(decoder_inputs, targets_t, decoder_causal_attention=prefix).logits
    log_probs = logits.float().log_softmax(-1).gather(-1, targets_t[..., None])[..., 0]
    return (log_probs * weights).sum(-1).tolist()
