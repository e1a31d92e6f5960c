"""Dropout whose random mask is cheap on CPU.

PyTorch's CPU dropout draws one Bernoulli sample per element (``bernoulli_``), which makes it
the largest single cost of a small T5's training step on CPU, ahead of the matmuls. Here one
random 64-bit word serves four elements: its 16-bit chunks are compared with an integer
threshold, so the drop probability is exact to 2**-16. Small masks take their words from
torch's generator (``random_``); large ones from two SFC64 streams of numpy filled on two
threads (torch's CPU ``random_`` runs on one), seeded by one draw of torch's generator. Either
way the masks follow ``torch.manual_seed`` and checkpointed RNG states like any torch op. On
other devices (where dropout is fused and fast) this is plain ``F.dropout``.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

_PARALLEL_WORDS = 1 << 18  # masks of >= 1M elements draw their words on two threads
_POOL: dict[int, ThreadPoolExecutor] = {}  # by process id: a forked child starts its own


def _pool() -> ThreadPoolExecutor:
    pid = os.getpid()
    if pid not in _POOL:
        _POOL.clear()
        _POOL[pid] = ThreadPoolExecutor(1, thread_name_prefix="taskmix-dropout")
    return _POOL[pid]


def _random_words(count: int) -> list[torch.Tensor]:
    """``count`` uniformly random int64 words over the full 64-bit range, in one or two pieces."""
    if count < _PARALLEL_WORDS:
        return [torch.empty(count, dtype=torch.int64).random_(-(2**63), None)]
    seed = int(torch.empty((), dtype=torch.int64).random_())  # in [0, 2**63)
    first, second = (np.random.SFC64(s) for s in np.random.SeedSequence(seed).spawn(2))
    half = count // 2
    pending = _pool().submit(first.random_raw, half)  # numpy fills without the GIL
    tail = second.random_raw(count - half)
    return [torch.from_numpy(words.view(np.int64)) for words in (pending.result(), tail)]


def keep_mask(shape: torch.Size, p: float, dtype: torch.dtype = torch.bool) -> torch.Tensor:
    """CPU mask, 1 (True) with probability 1 - p (to 2**-16), else 0; written straight in
    ``dtype`` (a float mask this way is 1.8x faster than a bool one converted)."""
    numel = shape.numel()
    threshold = -(2**15) + round(p * 2**16)  # P(uniform int16 >= threshold) = 1 - p
    keep = torch.empty(-(-numel // 4) * 4, dtype=dtype)
    start = 0
    for words in _random_words(len(keep) // 4):
        chunks = words.view(torch.int16)
        torch.ge(chunks, threshold, out=keep[start : start + len(chunks)])
        start += len(chunks)
    return keep[:numel].view(shape)


def _scaled_keep(x: torch.Tensor, p: float) -> torch.Tensor:
    """Float mask: 1 / (1 - p) where kept, else 0. Multiplying by it (as torch's own CPU dropout
    does) is several times faster than ``torch.where`` on the bool mask, which is not
    vectorised (T5-small step, (tokens x d_ff) activations: 48 -> 20 ms forward + backward)."""
    return keep_mask(x.shape, p, x.dtype).mul_(1.0 / (1.0 - p))


class _CpuDropout(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float) -> torch.Tensor:
        scaled_keep = _scaled_keep(x, p)
        ctx.save_for_backward(scaled_keep)
        return x * scaled_keep

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (scaled_keep,) = ctx.saved_tensors
        return grad * scaled_keep, None


class _CpuDropoutOfNonNegative(torch.autograd.Function):
    """Dropout of ``x >= 0``, or of ``relu(x)`` (``relu=True``, in place where ``x`` is not a
    view), that keeps only its output for the backward and reads the mask off it: the gradient
    passes where ``out > 0``. That is the exact gradient wherever the input is > 0. Where it is
    0 this gives 0 instead of ``grad * mask``, which changes nothing for the two inputs it is
    used on: relu's own gradient is 0 there, and softmax's backward multiplies by its output.
    The layer after keeps ``out`` anyway, so the dropout costs no memory of its own."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, p: float, relu: bool) -> torch.Tensor:
        ctx.scale = 1.0 / (1.0 - p)
        if relu and not x._is_view():
            ctx.mark_dirty(x)
            out = x.clamp_min_(0.0).mul_(_scaled_keep(x, p))
        else:
            out = (x.clamp_min(0.0) if relu else x) * _scaled_keep(x, p)
        ctx.save_for_backward(out)
        return out

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (out,) = ctx.saved_tensors
        return torch.ops.aten.threshold_backward(grad, out, 0.0).mul_(ctx.scale), None, None


def _cpu_training(x: torch.Tensor, p: float, training: bool) -> bool:
    return training and 0.0 < p < 1.0 and x.device.type == "cpu"


def dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    if not training or p == 0.0:
        return x
    if not _cpu_training(x, p, training):
        return F.dropout(x, p, training=True)
    return _CpuDropout.apply(x, p)


def relu_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """``dropout(relu(x))`` (T5.1.0's feed-forward); on CPU in training, in place on ``x`` (a
    projection's fresh output) and without a saved mask."""
    if _cpu_training(x, p, training):
        return _CpuDropoutOfNonNegative.apply(x, p, True)
    return dropout(F.relu(x), p, training)


def probability_dropout(x: torch.Tensor, p: float, training: bool) -> torch.Tensor:
    """Dropout of softmax outputs (attention weights), without a saved mask on CPU."""
    if _cpu_training(x, p, training):
        return _CpuDropoutOfNonNegative.apply(x, p, False)
    return dropout(x, p, training)


class Dropout(nn.Dropout):
    """``nn.Dropout`` with the cheap CPU mask (same ``p``, same module name in state dicts)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)
