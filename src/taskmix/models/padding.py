"""Attention for a padded batch whose per-token layers run on its real tokens only.

A batch of right-padded inputs is often a quarter padding. The projections and feed-forward
layers work token by token, so they can run on the (N, D) real tokens alone; only attention
needs the (B, L) layout. ``UnpaddedAttention`` is the plan that ``Attention`` receives instead
of a bias tensor (as it receives ``SegmentedAttention`` for packed rows): it scatters the
projected rows into the padded layout, attends with the usual bias, and gathers the real rows
back. ``T5Model.encode(..., skip_padding=True)`` uses it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F


@dataclass
class UnpaddedAttention:
    """``index`` / ``padding``: the flattened (B * L) positions of the N real tokens, in order,
    and of the padding; ``bias``: the additive attention bias, broadcastable to (B, H, L, L)."""

    index: torch.Tensor
    padding: torch.Tensor
    batch: int
    length: int
    bias: torch.Tensor
    _scratch: torch.Tensor | None = field(default=None, repr=False)

    @classmethod
    def build(cls, tokens: torch.Tensor, bias: torch.Tensor) -> UnpaddedAttention:
        """The plan for right- or otherwise padded ``tokens`` (B, L); padding is id 0."""
        real = tokens.reshape(-1) > 0
        index, padding = real.nonzero()[:, 0], (~real).nonzero()[:, 0]
        return cls(index, padding, tokens.shape[0], tokens.shape[1], bias)

    def padded(self, rows: torch.Tensor, *, scratch: bool = False) -> torch.Tensor:
        """(N, C) real-token rows -> (B * L, C), zeros at padding positions. With ``scratch``
        and no gradients the result is one tensor reused by every call (whose padding rows are
        zeroed once): valid until the next such call."""
        shape = (self.batch * self.length, rows.shape[-1])
        if torch.is_grad_enabled():
            return rows.new_zeros(shape).index_copy(0, self.index, rows)
        if not scratch:
            return rows.new_zeros(shape).index_copy_(0, self.index, rows)
        buffer = self._scratch
        if buffer is None or buffer.shape != shape or buffer.dtype != rows.dtype:
            buffer = self._scratch = rows.new_empty(shape).index_fill_(0, self.padding, 0.0)
        return buffer.index_copy_(0, self.index, rows)

    def attend_self(self, qkv: torch.Tensor, n_heads: int, dropout_p: float) -> torch.Tensor:
        """qkv (N, 3 x inner: queries, keys, values) -> (N, inner)."""
        padded = self.padded(qkv, scratch=True).view(self.batch, self.length, 3, n_heads, -1)
        q, k, v = padded.permute(2, 0, 3, 1, 4)
        out = F.scaled_dot_product_attention(
            q, k, v, attn_mask=self.bias.to(q.dtype), dropout_p=dropout_p, scale=1.0
        )
        return out.transpose(1, 2).reshape(self.batch * self.length, -1).index_select(0, self.index)

    def attend(
        self, q: torch.Tensor, kv: torch.Tensor, n_heads: int, dropout_p: float
    ) -> torch.Tensor:
        raise ValueError("UnpaddedAttention is a self-attention plan (an encoder's)")
