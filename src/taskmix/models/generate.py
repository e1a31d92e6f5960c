"""Greedy decoding with a key/value cache, logit-averaging ensembles and rank classification.

T5 evaluates with greedy decoding (SPEC §5); an ensemble averages the models' logits before the
softmax at every step (SPEC §8); rank classification scores every label option (SPEC §1).

The cached decoder runs the encoder once, computes every layer's cross-attention keys/values in
one matmul, and then per step runs one token through the layers with the self-attention
keys/values written into preallocated buffers. It reads the model's weights directly (no module
calls per step), in a layout prepared once and kept on the side until a parameter changes.
Rows that have produced EOS are dropped from the batch ("compaction") so that the remaining
steps only pay for the rows still decoding.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from taskmix.errors import TaskmixError
from taskmix.models import masks
from taskmix.models.decoder_only import DecoderOnlyLM
from taskmix.models.layers import mask_to_bias
from taskmix.models.lm_decoding import CachedLMDecoder, UncachedLMDecoder
from taskmix.models.onednn import onednn_enabled
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
    if isinstance(model, DecoderOnlyLM):
        kind = CachedLMDecoder if use_cache else UncachedLMDecoder
        return kind(model, tokens, max_length)
    if use_cache:
        return _CachedDecoder(model, tokens, _encode(model, tokens), max_length)
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


class _Projection:
    """``x @ W.T`` for a weight ``W`` (out, in) that stays fixed while decoding, laid out once.

    On a CPU build with oneDNN the weight is packed for oneDNN's fp32 GEMM: on AVX-512 CPUs
    where MKL's sgemm (behind ``torch.mm``) keeps to AVX2 (AMD EPYC here) it is 2.3x faster for
    the per-step (32, 256) x (256, 2048) products. Elsewhere it is transposed to (in, out), on
    which ``torch.mm`` is 20-40% faster than ``F.linear`` for small batches.
    """

    def __init__(self, weight: torch.Tensor):
        weight = weight.detach()
        self.packed = None
        self.dense = None
        if onednn_enabled(weight):
            self.packed = torch.ops.mkldnn._reorder_linear_weight(weight.contiguous(), None)
        else:
            self.dense = weight.t().contiguous()

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise(x, self.packed, None, "none", [], "")
        return torch.mm(x, self.dense)

    def add_to(self, residual: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``residual + x @ W.T`` in one call."""
        if self.packed is not None:
            return torch.ops.mkldnn._linear_pointwise.binary(x, residual, self.packed, None, "add")
        return torch.addmm(residual, x, self.dense)


def _rms(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """T5's layer norm, written out: HF's exact formula, and faster here than F.rms_norm."""
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


@dataclass
class _LayerWeights:
    ln_self: torch.Tensor
    # (d_model, 3 * inner), output columns ordered (head, q/k/v, d_kv) so that each of q, k, v
    # is a strided (B * H, d_kv) view that bmm takes without a copy.
    w_qkv: _Projection
    w_o_self: _Projection
    ln_cross: torch.Tensor
    w_q_cross: _Projection
    w_o_cross: _Projection
    ln_ff: torch.Tensor
    w_in: _Projection  # (d_model, d_ff), or (d_model, 2 * d_ff) with wi_0 then wi_1
    w_out: _Projection


@dataclass
class _EncoderLayerWeights:
    ln_self: torch.Tensor
    w_qkv: _Projection  # (d_model, 3 * inner): q, k, v side by side
    w_o: _Projection
    ln_ff: torch.Tensor
    w_in: _Projection
    w_out: _Projection


@dataclass
class _PreparedWeights:
    """A decoding-friendly copy of a model's weights (transposed, fused)."""

    encoder: list[_EncoderLayerWeights]
    layers: list[_LayerWeights]  # the decoder's
    w_cross_kv: _Projection  # (d_model, layers * 2 * inner): every layer's cross k then v
    lm_head: _Projection  # (d_model, vocab)


# model -> (fingerprint of its parameters, prepared weights). Weak keys: no model is kept alive.
_PREPARED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _fingerprint(model: T5Model) -> tuple:
    """Changes whenever a parameter is replaced, moved or updated in place (optimizer steps,
    load_state_dict and ``param.mul_()`` all bump the tensor's version counter), and with the
    weight layout (oneDNN or not)."""
    params = tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in model.parameters())
    return (onednn_enabled(model.shared.weight), *params)


def _prepared_weights(model: T5Model) -> _PreparedWeights:
    """The model's decoding weights, rebuilt only when a parameter has changed: re-copying them
    on every call cost about a tenth of a batch's decoding time."""
    key = _fingerprint(model)
    hit = _PREPARED.get(model)
    if hit is not None and hit[0] == key:
        return hit[1]
    config = model.config
    heads, d_kv = config.num_heads, config.d_kv
    layers, cross_kv = [], []
    for block in model.decoder.block:
        self_attn, cross, ff = block.layer[0], block.layer[1], block.layer[2]
        sa, ca, dense = self_attn.SelfAttention, cross.EncDecAttention, ff.DenseReluDense
        qkv = torch.stack([sa.q.weight, sa.k.weight, sa.v.weight])  # (3, H * d_kv, D)
        qkv = qkv.view(3, heads, d_kv, -1).transpose(0, 1).reshape(3 * heads * d_kv, -1)
        layers.append(
            _LayerWeights(
                ln_self=self_attn.layer_norm.weight,
                w_qkv=_Projection(qkv),
                w_o_self=_Projection(sa.o.weight),
                ln_cross=cross.layer_norm.weight,
                w_q_cross=_Projection(ca.q.weight),
                w_o_cross=_Projection(ca.o.weight),
                ln_ff=ff.layer_norm.weight,
                w_in=_feed_forward_in(dense),
                w_out=_Projection(dense.wo.weight),
            )
        )
        cross_kv += [ca.k.weight, ca.v.weight]
    encoder = []
    for block in model.encoder.block:
        self_attn, ff = block.layer[0], block.layer[-1]
        sa, dense = self_attn.SelfAttention, ff.DenseReluDense
        encoder.append(
            _EncoderLayerWeights(
                ln_self=self_attn.layer_norm.weight,
                w_qkv=_Projection(torch.cat([sa.q.weight, sa.k.weight, sa.v.weight])),
                w_o=_Projection(sa.o.weight),
                ln_ff=ff.layer_norm.weight,
                w_in=_feed_forward_in(dense),
                w_out=_Projection(dense.wo.weight),
            )
        )
    head = model.shared.weight if model.lm_head is None else model.lm_head.weight
    prepared = _PreparedWeights(
        encoder=encoder,
        layers=layers,
        w_cross_kv=_Projection(torch.cat(cross_kv)),
        lm_head=_Projection(head),
    )
    _PREPARED[model] = (key, prepared)
    return prepared


def _feed_forward_in(dense: torch.nn.Module) -> torch.Tensor:
    """(d_model, d_ff), or (d_model, 2 * d_ff) with the gated model's wi_0 then wi_1."""
    if hasattr(dense, "wi_0"):
        return _Projection(torch.cat([dense.wi_0.weight, dense.wi_1.weight]))
    return _Projection(dense.wi.weight)


def _feed_forward(x: torch.Tensor, w_in: _Projection, gated: bool) -> torch.Tensor:
    """The feed-forward's hidden activations for the normed ``x``; callers apply the output
    projection and the residual in one addmm."""
    hidden = w_in(x)
    if gated:
        gate, linear = hidden.chunk(2, dim=-1)
        return F.gelu(gate, approximate="tanh").mul_(linear)
    return hidden.relu_()


def _encode(model: T5Model, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode(tokens)`` on the prepared weights, with padding skipped: the per-token
    projections and feed-forward layers run on the real tokens only (a padded batch is often a
    quarter padding); only attention sees the padded (B, H, L, L) layout. Padding positions of
    the result are zero (cross-attention masks them)."""
    config, weights = model.config, _prepared_weights(model)
    heads, d_kv, eps = config.num_heads, config.d_kv, config.layer_norm_epsilon
    batch, length = tokens.shape
    valid = tokens > 0
    flat = tokens.reshape(-1)
    index = None if bool(valid.all()) else valid.reshape(-1).nonzero()[:, 0]
    x = F.embedding(flat if index is None else flat[index], model.shared.weight)  # (N, D)
    positions = torch.arange(length, device=tokens.device)[None, :]
    bias = model.encoder.position_bias(positions, positions) + mask_to_bias(
        masks.fully_visible_mask(tokens, None), x.dtype
    )

    def padded(rows: torch.Tensor) -> torch.Tensor:  # (N, C) -> (B * L, C)
        if index is None:
            return rows
        return rows.new_zeros(batch * length, rows.shape[1]).index_copy_(0, index, rows)

    for layer in weights.encoder:
        qkv = padded(layer.w_qkv(_rms(x, layer.ln_self, eps)))
        q, k, v = qkv.view(batch, length, 3, heads, d_kv).permute(2, 0, 3, 1, 4)
        attn = F.scaled_dot_product_attention(q, k, v, attn_mask=bias, scale=1.0)
        attn = attn.transpose(1, 2).reshape(batch * length, -1)
        x = layer.w_o.add_to(x, attn if index is None else attn[index])
        hidden = _feed_forward(_rms(x, layer.ln_ff, eps), layer.w_in, config.is_gated)
        x = layer.w_out.add_to(x, hidden)
    x = _rms(x, model.encoder.final_layer_norm.weight, eps)
    return padded(x).view(batch, length, -1)


class _CachedDecoder:
    """Incremental decoder state for one model. Attention runs as bmm over B * H rows; keys are
    kept transposed, (B, H, d_kv, L), so that scores are one ``baddbmm`` with the bias."""

    def __init__(
        self, model: T5Model, tokens: torch.Tensor, encoder_hidden: torch.Tensor, max_length: int
    ):
        config = model.config
        self.eps = config.layer_norm_epsilon
        self.heads, self.d_kv = config.num_heads, config.d_kv
        self.gated = config.is_gated
        self.embedding = model.shared.weight
        self.final_ln = model.decoder.final_layer_norm.weight
        self.scale = config.d_model**-0.5 if model.lm_head is None else None
        self.weights = _prepared_weights(model)
        num_layers = len(self.weights.layers)
        heads, d_kv = self.heads, self.d_kv
        batch, enc_len = tokens.shape
        dtype, device = encoder_hidden.dtype, encoder_hidden.device

        # Every layer's cross-attention keys and values from one matmul.
        kv = self.weights.w_cross_kv(encoder_hidden.reshape(batch * enc_len, -1))
        kv = kv.view(batch, enc_len, num_layers, 2, heads, d_kv)
        self.cross_kt = kv[:, :, :, 0].permute(2, 0, 3, 4, 1).contiguous()  # (N, B, H, d_kv, L)
        self.cross_v = kv[:, :, :, 1].permute(2, 0, 3, 1, 4).contiguous()  # (N, B, H, L, d_kv)
        cross_bias = mask_to_bias(masks.cross_mask(tokens, None, None), dtype)  # (B, 1, 1, L)
        self.cross_bias = cross_bias.expand(batch, heads, 1, enc_len).contiguous()

        positions = torch.arange(max_length, device=device)[None, :]
        # (B, H, T, T), identical for every row: row t holds query t's bias against each key.
        bias = model.decoder.position_bias(positions, positions)
        self.self_bias = bias.expand(batch, heads, max_length, max_length).contiguous()
        self.cache_kt = torch.zeros(
            num_layers, batch, heads, d_kv, max_length, dtype=dtype, device=device
        )
        self.cache_v = torch.zeros(
            num_layers, batch, heads, max_length, d_kv, dtype=dtype, device=device
        )

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the batch rows ``index`` (finished rows are dropped)."""
        self.cross_kt = self.cross_kt.index_select(1, index)
        self.cross_v = self.cross_v.index_select(1, index)
        self.cross_bias = self.cross_bias.index_select(0, index)
        self.self_bias = self.self_bias[: len(index)]  # rows are identical
        self.cache_kt = self.cache_kt.index_select(1, index)
        self.cache_v = self.cache_v.index_select(1, index)

    def step(self, current: torch.Tensor, t: int) -> torch.Tensor:
        """Logits (B, vocab) for the token after ``current``, the token at decoder position t."""
        batch = current.shape[0]
        heads, d_kv, eps = self.heads, self.d_kv, self.eps
        rows = batch * heads
        x = F.embedding(current, self.embedding)  # (B, D)
        self_bias = self.self_bias.view(rows, -1, self.self_bias.shape[-1])[:, t : t + 1, : t + 1]
        cross_bias = self.cross_bias.view(rows, 1, -1)
        for i, layer in enumerate(self.weights.layers):
            qkv = layer.w_qkv(_rms(x, layer.ln_self, eps)).view(batch, heads, 3, d_kv)
            cache_kt, cache_v = self.cache_kt[i], self.cache_v[i]
            cache_kt[:, :, :, t] = qkv[:, :, 1]
            cache_v[:, :, t] = qkv[:, :, 2]
            q = qkv[:, :, 0].view(rows, 1, d_kv)
            scores = torch.baddbmm(self_bias, q, cache_kt.view(rows, d_kv, -1)[:, :, : t + 1])
            attn = torch.bmm(torch.softmax(scores, -1), cache_v.view(rows, -1, d_kv)[:, : t + 1])
            x = layer.w_o_self.add_to(x, attn.view(batch, -1))  # residual + projection

            q = layer.w_q_cross(_rms(x, layer.ln_cross, eps)).view(rows, 1, d_kv)
            scores = torch.baddbmm(cross_bias, q, self.cross_kt[i].view(rows, d_kv, -1))
            attn = torch.bmm(torch.softmax(scores, -1), self.cross_v[i].view(rows, -1, d_kv))
            x = layer.w_o_cross.add_to(x, attn.view(batch, -1))

            hidden = _feed_forward(_rms(x, layer.ln_ff, eps), layer.w_in, self.gated)
            x = layer.w_out.add_to(x, hidden)
        x = _rms(x, self.final_ln, eps)
        if self.scale is not None:
            x = x * self.scale
        return self.weights.lm_head(x)


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
