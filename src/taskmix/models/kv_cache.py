"""Key/value cache for incremental decoding, passed through the model's own forwards.

Decoding calls ``Stack.forward`` with a ``KVCache``; each ``Block`` hands its ``BlockCache`` to
its attention layers, and ``Attention`` (see ``layers.py``) writes and reads it. So every step
runs the model's modules (layer norms, projections, feed-forward, hooks and wrappers included);
only the keys and values of earlier positions are not recomputed:

* self-attention appends the keys/values of each call's new positions to a buffer allocated
  once for the whole decoding length, and attends over all positions so far;
* cross-attention projects the encoder output to keys/values on the first call and reuses them.

``keep(index)`` drops batch rows (finished rows, "compaction") from every buffer.
"""

from __future__ import annotations

import inspect

import torch
import torch.nn.functional as F
from torch import nn


class AttentionCache:
    """One attention layer's keys and values.

    With a ``capacity`` it is a self-attention cache that ``append`` grows up to that many
    positions. Its buffer is position-major, (capacity, 2, B, H, d_kv) (keys, then values): a
    step writes one contiguous block and attention reads one contiguous prefix. A (B, H,
    capacity, d_kv) layout scatters both over B * H places in memory, which cost T5-mini at
    batch 32 about 0.4 ms more per step. Without a capacity it holds the cross-attention
    keys/values, (2, B, H, L, d_kv), set once by ``store``."""

    def __init__(self, capacity: int | None = None):
        self.capacity = capacity
        self.buffer: torch.Tensor | None = None
        self.length = 0
        self._cross_operands: tuple[torch.Tensor, torch.Tensor] | None = None

    @property
    def empty(self) -> bool:
        return self.buffer is None

    def append(self, keys_values: torch.Tensor) -> None:
        """Write the new positions' keys and values, (B, n, 2, H, d_kv)."""
        if self.capacity is None:
            raise ValueError("AttentionCache.append: a cross-attention cache is set with store()")
        batch, new, _, heads, d_kv = keys_values.shape
        if self.buffer is None:
            self.buffer = keys_values.new_empty(self.capacity, 2, batch, heads, d_kv)
        end = self.length + new
        if end > self.capacity:
            raise ValueError(f"AttentionCache: {end} positions exceed the capacity {self.capacity}")
        self.buffer[self.length : end] = keys_values.permute(1, 2, 0, 3, 4)
        self.length = end

    def store(self, keys_values: torch.Tensor) -> None:
        """Set the cross-attention keys and values, (B, L, 2, H, d_kv)."""
        self.buffer = keys_values.permute(2, 0, 3, 1, 4).contiguous()
        self.length = keys_values.shape[1]
        self._cross_operands = None

    def keep(self, index: torch.Tensor) -> None:
        if self.buffer is not None:
            self.buffer = self.buffer.index_select(1 if self.capacity is None else 2, index)
            self._cross_operands = None

    def _operands(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys as (B * H, d_kv, positions) and values as (B * H, positions, d_kv): views of
        the buffer for the batched products (built once for cross-attention, whose length is
        fixed; per step for self-attention, with one ``as_strided`` each)."""
        buffer, length = self.buffer, self.length
        if self.capacity is None:
            if self._cross_operands is None:
                _, batch, heads, _, d_kv = buffer.shape
                keys = buffer[0].view(batch * heads, length, d_kv).transpose(1, 2)
                self._cross_operands = keys, buffer[1].view(batch * heads, length, d_kv)
            return self._cross_operands
        _, _, batch, heads, d_kv = buffer.shape
        rows = batch * heads
        step = 2 * rows * d_kv  # from one position to the next
        offset = buffer.storage_offset()
        keys = buffer.as_strided((rows, d_kv, length), (d_kv, 1, step), offset)
        values = buffer.as_strided((rows, length, d_kv), (d_kv, step, 1), offset + rows * d_kv)
        return keys, values

    def attend(self, q: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """T5 attention (no 1/sqrt(d_kv) scaling) of q (B, n, H, d_kv) over the cached
        positions, with an additive ``bias`` broadcastable to (B, H, n, positions); returns
        (B, n, H * d_kv).

        One query per row (a decoding step) runs as two batched products over the B * H rows,
        on views of the buffer (no copies): for these shapes faster than SDPA's kernels.
        Several queries (a prompt) go through SDPA."""
        batch, new, heads, d_kv = q.shape
        length = self.length
        if bias.dtype != q.dtype:
            bias = bias.to(q.dtype)
        if new != 1:
            if self.capacity is None:  # (2, B, H, L, d)
                keys, values = self.buffer[0], self.buffer[1]
            else:  # (positions, 2, B, H, d) -> (B, H, positions, d) views
                keys = self.buffer[:length, 0].permute(1, 2, 0, 3)
                values = self.buffer[:length, 1].permute(1, 2, 0, 3)
            out = F.scaled_dot_product_attention(
                q.transpose(1, 2), keys, values, attn_mask=bias, scale=1.0
            )
            return out.transpose(1, 2).reshape(batch, new, heads * d_kv)
        rows = batch * heads
        keys_t, values = self._operands()
        bias = bias.expand(batch, heads, 1, length).reshape(rows, 1, length)
        scores = torch.baddbmm(bias, q.reshape(rows, 1, d_kv), keys_t)
        out = torch.bmm(torch.softmax(scores, dim=-1), values)
        return out.view(batch, 1, heads * d_kv)


class BlockCache:
    """The caches of one block: its self-attention and, in a decoder, its cross-attention."""

    def __init__(self, capacity: int, cross_attention: bool):
        self.self_attention = AttentionCache(capacity)
        self.cross_attention = AttentionCache() if cross_attention else None

    def keep(self, index: torch.Tensor) -> None:
        self.self_attention.keep(index)
        if self.cross_attention is not None:
            self.cross_attention.keep(index)


class KVCache:
    """Every block's cache for one stack and one batch being decoded, ``capacity`` positions
    long (prompt and generated tokens)."""

    def __init__(self, num_blocks: int, capacity: int, *, cross_attention: bool):
        self.blocks = [BlockCache(capacity, cross_attention) for _ in range(num_blocks)]

    @property
    def length(self) -> int:
        """Positions cached so far."""
        return self.blocks[0].self_attention.length if self.blocks else 0

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the batch rows ``index`` (in that order)."""
        for block in self.blocks:
            block.keep(index)


def takes_cache(module: nn.Module) -> bool:
    """Whether ``module.forward`` accepts a ``cache`` keyword (a layer replaced by one that does
    not cannot be decoded incrementally; the decoder then re-runs the whole prefix instead)."""
    try:
        parameters = inspect.signature(module.forward).parameters
    except (TypeError, ValueError):
        return False
    return "cache" in parameters or any(
        p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()
    )
