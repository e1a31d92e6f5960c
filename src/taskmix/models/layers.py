"""T5 building blocks. Module and parameter names mirror transformers' T5 so state_dicts line up
with Hugging Face checkpoints (``encoder.block.0.layer.0.SelfAttention.q.weight`` ...)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from taskmix.models.config import T5Config
from taskmix.models.cpu_linear import Linear, linear
from taskmix.models.dropout import Dropout, relu_dropout
from taskmix.models.kv_cache import AttentionCache, BlockCache, KVCache, takes_cache
from taskmix.models.lora import fused_projection
from taskmix.models.packed import PackedWeight, is_plain_linear, packed_linear
from taskmix.models.padding import UnpaddedAttention
from taskmix.models.segments import SegmentedAttention

# An additive bias tensor, or a plan that runs attention itself: within packed segments, or on
# a padded batch whose per-token layers see only its real tokens.
AttentionBias = torch.Tensor | SegmentedAttention | UnpaddedAttention


class T5LayerNorm(nn.Module):
    """RMS norm: scale only, no bias and no mean subtraction; statistics in fp32."""

    def __init__(self, d_model: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d_model))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight
        if x.dtype == weight.dtype == torch.float32:
            if not torch.is_grad_enabled():  # the formula below, minus its no-op conversions
                return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps))
            if x.device.type == "cpu" and not torch.compiler.is_compiling():
                return _CpuRMSNorm.apply(x, weight, self.eps)
        variance = x.float().pow(2).mean(-1, keepdim=True)
        x = x * torch.rsqrt(variance + self.eps)
        return weight * x.to(weight.dtype)


class _CpuRMSNorm(torch.autograd.Function):
    """``T5LayerNorm`` in training on fp32 CPU tensors, with a hand-written backward: about half
    the full-size passes and temporaries of autograd's (T5-small, 4032 x 512 rows: 4.8 -> 3.1 ms
    forward + backward); equal to the formula to fp32 rounding.

    With r = rsqrt(mean(x^2) + eps) and y = x * r * w:
    dx = r * (g*w - x * r^2 * mean(g*w*x)),  dw = sum over rows of g * x * r."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
        d = x.shape[-1]
        r = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square_().div_(d).add_(eps).rsqrt_()
        ctx.save_for_backward(x, weight, r)
        return (x * r).mul_(weight)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        x, weight, r = ctx.saved_tensors
        d = x.shape[-1]
        grad_scaled = grad * weight
        coefficient = torch.linalg.vecdot(grad_scaled, x).unsqueeze(-1).mul_(r.square()).div_(-d)
        grad_x = torch.addcmul(grad_scaled, x, coefficient).mul_(r)
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = (grad * x).reshape(-1, d).t() @ r.reshape(-1)
        return grad_x, grad_w, None


class DenseActDense(nn.Module):
    """T5.1.0 feed-forward: ReLU between two bias-free projections."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.wi = Linear(config.d_model, config.d_ff, bias=False)
        self.wo = Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = Dropout(config.dropout_rate)
        self._packed_in = PackedWeight()  # wi with the ReLU fused, for decoding

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = None
        if not self.training and is_plain_linear(self.wi):
            # decoding: oneDNN applies the ReLU to the product's output (one pass less)
            hidden = packed_linear(x, (self.wi.weight,), self._packed_in, activation="relu")
        if hidden is None:
            hidden = relu_dropout(self.wi(x), self.dropout.p, self.training)
        return self.wo(hidden)


class DenseGatedActDense(nn.Module):
    """T5.1.1 feed-forward: gelu_new (tanh approximation) gate times a linear branch."""

    def __init__(self, config: T5Config):
        super().__init__()
        self.wi_0 = Linear(config.d_model, config.d_ff, bias=False)
        self.wi_1 = Linear(config.d_model, config.d_ff, bias=False)
        self.wo = Linear(config.d_ff, config.d_model, bias=False)
        self.dropout = Dropout(config.dropout_rate)
        self._packed_gate = PackedWeight()  # wi_0 and wi_1, for decoding (_packed_hidden)
        self._packed_linear = PackedWeight()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = None if self.training else self._packed_hidden(x)
        if hidden is None:
            gate = F.gelu(self.wi_0(x), approximate="tanh")
            hidden = self.dropout(gate * self.wi_1(x))
        return self.wo(hidden)

    def _packed_hidden(self, x: torch.Tensor) -> torch.Tensor | None:
        """Decoding: ``gelu(wi_0(x)) * wi_1(x)`` as two packed products, oneDNN applying the
        GELU to the first's output and the multiplication to the second's (no separate passes
        or temporaries: 8% faster at 32 rows, more on an encoder's hundreds). None where the
        packed path does not apply or wi_0 / wi_1 is not a plain projection (it is called)."""
        if not (is_plain_linear(self.wi_0) and is_plain_linear(self.wi_1)):
            return None
        gate = packed_linear(x, (self.wi_0.weight,), self._packed_gate, activation="gelu_tanh")
        if gate is None:
            return None
        hidden = packed_linear(x, (self.wi_1.weight,), self._packed_linear, multiply=gate)
        return self.dropout(gate * self.wi_1(x) if hidden is None else hidden)


class LayerFF(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.DenseReluDense = (
            DenseGatedActDense(config) if config.is_gated else DenseActDense(config)
        )
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = Dropout(config.dropout_rate)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.dropout(self.DenseReluDense(self.layer_norm(x)))


class Attention(nn.Module):
    """Multi-head attention without 1/sqrt(d_kv) scaling (T5 folds it into the initialisation).

    ``attn_bias`` is an additive float tensor (B or 1, H or 1, Lq, Lk) holding the relative
    position bias plus a large negative value at masked positions, or a ``SegmentedAttention``
    plan (``SegmentedAttention`` for packed rows, ``UnpaddedAttention`` for the real tokens of a
    padded batch). With a ``cache`` (decoding) ``x`` holds only the new positions; see
    ``_forward_cached``."""

    def __init__(self, config: T5Config, has_relative_attention_bias: bool = False):
        super().__init__()
        self.n_heads = config.num_heads
        self.d_kv = config.d_kv
        inner = config.num_heads * config.d_kv
        self.q = Linear(config.d_model, inner, bias=False)
        self.k = Linear(config.d_model, inner, bias=False)
        self.v = Linear(config.d_model, inner, bias=False)
        self.o = Linear(inner, config.d_model, bias=False)
        self.dropout = config.dropout_rate
        if has_relative_attention_bias:
            self.relative_attention_bias = nn.Embedding(
                config.relative_attention_num_buckets, config.num_heads
            )
        # packed copies of the fused projections (q, k, v and k, v), made while decoding
        self._packed_qkv = PackedWeight()
        self._packed_kv = PackedWeight()

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        batch, length, _ = x.shape
        return x.view(batch, length, self.n_heads, self.d_kv).transpose(1, 2)

    @staticmethod
    def _project(
        x: torch.Tensor, layers: tuple[nn.Module, ...], packed: PackedWeight
    ) -> torch.Tensor:
        """The outputs of ``layers`` on ``x``, side by side. Plain bias-free projections (the
        usual case) run as one product with their stacked weights: ``x`` is read once, the GEMM
        is larger, and ``x`` gets one gradient instead of a sum of several (T5-small, CPU: q, k
        and v forward + backward 1.2x faster); while decoding, on the packed copy ``packed``.
        LoRA layers among them join in (``lora.fused_projection``). Anything else (a subclass,
        a wrapper, a layer with hooks) is called as it is."""
        if all(is_plain_linear(layer) for layer in layers):
            weights = [layer.weight for layer in layers]
            out = packed_linear(x, weights, packed)
            return linear(x, torch.cat(weights)) if out is None else out
        out = fused_projection(x, layers, packed)
        return torch.cat([layer(x) for layer in layers], dim=-1) if out is None else out

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: AttentionBias,
        kv: torch.Tensor | None = None,
        cache: AttentionCache | None = None,
    ) -> torch.Tensor:
        if cache is not None:
            return self._forward_cached(x, attn_bias, kv, cache)
        dropout_p = self.dropout if self.training else 0.0
        plan = not isinstance(attn_bias, torch.Tensor)
        if kv is None:  # self-attention
            qkv = self._project(x, (self.q, self.k, self.v), self._packed_qkv)
            if plan:
                return self.o(attn_bias.attend_self(qkv, self.n_heads, dropout_p))
            q, k, v = qkv.chunk(3, dim=-1)
        else:  # cross-attention
            q, keys_values = self.q(x), self._project(kv, (self.k, self.v), self._packed_kv)
            if plan:
                return self.o(attn_bias.attend(q, keys_values, self.n_heads, dropout_p))
            k, v = keys_values.chunk(2, dim=-1)
        out = F.scaled_dot_product_attention(
            self._heads(q),
            self._heads(k),
            self._heads(v),
            attn_mask=attn_bias.to(q.dtype),
            dropout_p=dropout_p,
            scale=1.0,
        )
        batch, _, length, _ = out.shape
        return self.o(out.transpose(1, 2).reshape(batch, length, -1))

    def _forward_cached(
        self,
        x: torch.Tensor,
        attn_bias: torch.Tensor,
        kv: torch.Tensor | None,
        cache: AttentionCache,
    ) -> torch.Tensor:
        """Decoding: ``x`` (B, n, D) holds the n new positions. Self-attention appends their
        keys/values to ``cache`` and attends over every cached position (``attn_bias``
        broadcastable to (B, H, n, positions so far)); cross-attention projects ``kv`` to
        keys/values on the first call only. The projections are the same calls as above."""
        batch, new, _ = x.shape
        heads = self.n_heads
        if kv is None:
            qkv = self._project(x, (self.q, self.k, self.v), self._packed_qkv)
            qkv = qkv.view(batch, new, 3, heads, -1)
            cache.append(qkv[:, :, 1:])
            q = qkv[:, :, 0]
        else:
            q = self.q(x).view(batch, new, heads, -1)
            if cache.empty:
                keys_values = self._project(kv, (self.k, self.v), self._packed_kv)
                cache.store(keys_values.view(kv.shape[0], kv.shape[1], 2, heads, -1))
        return self.o(cache.attend(q, attn_bias))


class LayerSelfAttention(nn.Module):
    def __init__(self, config: T5Config, has_relative_attention_bias: bool = False):
        super().__init__()
        self.SelfAttention = Attention(config, has_relative_attention_bias)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = Dropout(config.dropout_rate)

    def forward(
        self, x: torch.Tensor, attn_bias: AttentionBias, cache: AttentionCache | None = None
    ) -> torch.Tensor:
        h = self.layer_norm(x)
        if cache is None:  # no cache argument: a replacement without one works here
            h = self.SelfAttention(h, attn_bias)
        else:
            h = self.SelfAttention(h, attn_bias, cache=cache)
        return x + self.dropout(h)


class LayerCrossAttention(nn.Module):
    def __init__(self, config: T5Config):
        super().__init__()
        self.EncDecAttention = Attention(config)
        self.layer_norm = T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        self.dropout = Dropout(config.dropout_rate)

    def forward(
        self,
        x: torch.Tensor,
        kv: torch.Tensor,
        attn_bias: AttentionBias,
        cache: AttentionCache | None = None,
    ) -> torch.Tensor:
        h = self.layer_norm(x)
        if cache is None:
            h = self.EncDecAttention(h, attn_bias, kv=kv)
        else:
            h = self.EncDecAttention(h, attn_bias, kv=kv, cache=cache)
        return x + self.dropout(h)


class Block(nn.Module):
    """Pre-norm block: self-attention, optional cross-attention, feed-forward (HF's ``layer`` list)."""

    def __init__(
        self,
        config: T5Config,
        *,
        cross_attention: bool,
        has_relative_attention_bias: bool,
        share_with: Block | None = None,
    ):
        super().__init__()
        # share_with: reuse another block's self-attention and feed-forward (shared enc/dec variant).
        self_attn = (
            share_with.layer[0]
            if share_with is not None
            else LayerSelfAttention(config, has_relative_attention_bias)
        )
        ff = share_with.layer[-1] if share_with is not None else LayerFF(config)
        layers: list[nn.Module] = [self_attn]
        if cross_attention:
            layers.append(LayerCrossAttention(config))
        layers.append(ff)
        self.layer = nn.ModuleList(layers)
        self.has_cross_attention = cross_attention

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: AttentionBias,
        cross_states: torch.Tensor | None = None,
        cross_bias: AttentionBias | None = None,
        cache: BlockCache | None = None,
    ) -> torch.Tensor:
        layers = tuple(self.layer)  # one pass over the ModuleList (its indexing is slow)
        if cache is None:  # no cache argument: replacements without one work here
            x = layers[0](x, attn_bias)
            if self.has_cross_attention:
                x = layers[1](x, cross_states, cross_bias)
        else:
            x = layers[0](x, attn_bias, cache=cache.self_attention)
            if self.has_cross_attention:
                x = layers[1](x, cross_states, cross_bias, cache=cache.cross_attention)
        return layers[-1](x)


def relative_position_bucket(
    relative_position: torch.Tensor, *, bidirectional: bool, num_buckets: int, max_distance: int
) -> torch.Tensor:
    """Mesh-TF / T5 bucketing of ``key_pos - query_pos``: exact buckets for small distances,
    log-spaced ones up to ``max_distance``; with ``bidirectional`` half the buckets are for
    keys after the query, otherwise keys after the query share bucket 0."""
    buckets = torch.zeros_like(relative_position)
    if bidirectional:
        num_buckets //= 2
        buckets = buckets + (relative_position > 0).long() * num_buckets
        distance = relative_position.abs()
    else:
        distance = (-relative_position).clamp(min=0)
    max_exact = num_buckets // 2
    is_small = distance < max_exact
    # clamp(min=1) only avoids log(0) in the unused branch; small distances take the exact bucket.
    large = (
        max_exact
        + (
            torch.log(distance.clamp(min=1).float() / max_exact)
            / math.log(max_distance / max_exact)
            * (num_buckets - max_exact)
        ).long()
    )
    large = large.clamp(max=num_buckets - 1)
    return buckets + torch.where(is_small, distance, large)


def mask_to_bias(allowed: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Boolean ``allowed`` -> additive float mask: 0 where allowed, the dtype's minimum elsewhere
    (finite, so a fully masked padding row yields no NaN)."""
    zero = torch.zeros((), dtype=dtype, device=allowed.device)
    return torch.where(allowed, zero, torch.finfo(dtype).min)


class Stack(nn.Module):
    """A stack of blocks with one relative position bias (held, as in HF, by block 0's
    self-attention) computed once per forward and shared by every layer."""

    def __init__(
        self,
        config: T5Config,
        num_layers: int,
        *,
        cross_attention: bool,
        bidirectional: bool,
        share_with: Stack | None = None,
    ):
        super().__init__()
        self.config = config
        self.bidirectional = bidirectional
        self.block = nn.ModuleList(
            Block(
                config,
                cross_attention=cross_attention,
                has_relative_attention_bias=i == 0,
                share_with=None if share_with is None else share_with.block[i],
            )
            for i in range(num_layers)
        )
        self.final_layer_norm = (
            share_with.final_layer_norm
            if share_with is not None
            else T5LayerNorm(config.d_model, config.layer_norm_epsilon)
        )
        self.dropout = Dropout(config.dropout_rate)

    @property
    def relative_attention_bias(self) -> nn.Embedding:
        return self.block[0].layer[0].SelfAttention.relative_attention_bias

    def position_bias(self, query_pos: torch.Tensor, key_pos: torch.Tensor) -> torch.Tensor:
        """(B, Lq) and (B, Lk) positions (B may be 1) -> bias (B, H, Lq, Lk)."""
        relative = key_pos[:, None, :] - query_pos[:, :, None]
        buckets = relative_position_bucket(
            relative,
            bidirectional=self.bidirectional,
            num_buckets=self.config.relative_attention_num_buckets,
            max_distance=self.config.relative_attention_max_distance,
        )
        return self.relative_attention_bias(buckets).permute(0, 3, 1, 2)

    def forward(
        self,
        x: torch.Tensor,
        attn_bias: AttentionBias,
        cross_states: torch.Tensor | None = None,
        cross_bias: AttentionBias | None = None,
        cache: KVCache | None = None,
    ) -> torch.Tensor:
        """With a ``cache`` (decoding, see ``kv_cache``): ``x`` (B, n, D) holds the n new
        positions and ``attn_bias`` their rows against every cached position."""
        x = self.dropout(x)
        if cache is None:
            for block in self.block:
                x = block(x, attn_bias, cross_states, cross_bias)
        else:
            for block, block_cache in zip(self.block, cache.blocks, strict=True):
                x = block(x, attn_bias, cross_states, cross_bias, cache=block_cache)
        return self.dropout(self.final_layer_norm(x))

    def new_cache(self, capacity: int) -> KVCache:
        """An empty key/value cache for decoding up to ``capacity`` positions."""
        cross = bool(self.block) and getattr(self.block[0], "has_cross_attention", False)
        return KVCache(len(self.block), capacity, cross_attention=cross)

    def supports_cache(self) -> bool:
        """Whether every module on the cache's path takes it (``takes_cache``): the stack, its
        blocks, and, inside taskmix blocks, the attention layers and their ``Attention``. A
        module replaced by one that does not take a cache makes this False."""
        modules: list[nn.Module] = [self]
        for block in self.block:
            modules.append(block)
            if not isinstance(block, Block):
                continue
            attention_layers = block.layer[:2] if block.has_cross_attention else block.layer[:1]
            for layer in attention_layers:
                modules.append(layer)
                if isinstance(layer, LayerSelfAttention):
                    modules.append(layer.SelfAttention)
                elif isinstance(layer, LayerCrossAttention):
                    modules.append(layer.EncDecAttention)
        return all(takes_cache(m) for m in modules)
