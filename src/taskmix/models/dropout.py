"""Dropout whose random mask is cheap on CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``), which makes it
the largest single cost of a small T5's training step on CPU, ahead of the matmuls. Here one
64-bit draw of the same generator (``random_``) serves four elements: its 16-bit chunks are
compared with an integer threshold. The drop probability is exact to 2**-15, the stream follows
``torch.manual_seed`` and checkpointed RNG states like any torch op, and on other devices
(where dropout is fused and fast) this is plain ``F.dropout``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def keep_mask(shape: torch.Size, p: float) -> torch.Tensor:
    """Bool CPU mask, True with probability 1 - p (to 2**-15)."""
    numel = shape.numel()
    words = torch.empty((numel + 3) // 4, dtype=torch.int64).random_()  # uniform in [0, 2**63)
    # Shifted left by one, the 63 random bits fill four 16-bit chunks, the lowest as even
    # numbers: every chunk is uniform over the int16 range in steps of at most 2, so one scalar
    # comparison with an even threshold serves them all.
    chunks = words.bitwise_left_shift_(1).view(torch.int16)
    threshold = -(2**15) + 2 * round(p * 2**15)
    return (chunks >= threshold)[:numel].view(shape)


def _masked(x: torch.Tensor, keep: torch.Tensor, scale: float) -> torch.Tensor:
    """``x`` where ``keep``, else 0, times ``scale``. The zero is a 0-d tensor: with a Python
    scalar, ``torch.where`` dispatches through a slower path that took 2.6x as long inside a
    T5-small step (same values)."""
    return torch.where(keep, x, x.new_zeros(())).mul_(scale)


class _CpuDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, p)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return _masked(x, keep, ctx.scale)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (keep,) = ctx.saved_tensors
        return _masked(grad, keep, ctx.scale), None


class _CpuReluDropout(torch.autograd.Function):
    """``dropout(relu(x))`` in one pass each way, keeping one bool mask for the backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        keep = keep_mask(x.shape, p).logical_and_(x > 0)
        ctx.save_for_backward(keep)
        ctx.scale = 1.0 / (1.0 - p)
        return _masked(x, keep, ctx.scale)

    backward = _CpuDropout.backward


def relu_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``dropout(relu(x))`` (T5.1.0's feed-forward), fused on CPU in training."""
    if training and 0.0 < p < 1.0 and x.device.type == "cpu":
        return _CpuReluDropout.apply(x, p)
    return dropout(F.relu(x), p, training)


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if x.device.type != "cpu" or p >= 1.0:
        return F.dropout(x, p, training=True)
    return _CpuDropout.apply(x, p)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU mask (same ``p``, same module name in state dicts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
