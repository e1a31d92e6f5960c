"""fp32 CPU projections (forward and backward) through oneDNN instead of MKL.

On AMD EPYC CPUs the MKL sgemm behind ``torch.mm`` / ``F.linear`` does not use AVX-512 (MKL
picks a slower path on non-Intel CPUs), while oneDNN, bundled in torch's CPU build, does. At one
thread, (4096x512) @ (512x2048): F.linear ~70-90 GFLOP/s, ``torch.ops.mkldnn._linear_pointwise``
~130-190 GFLOP/s (about 2x); both backward products gain 1.2-2x too. Results differ from MKL by
float32 rounding only (a different summation order).

The gain comes from AVX-512: on a CPU without it (torch's CPU capability below ``AVX512``),
MKL was the faster of the two in every product of a T5-small training step (AVX2-only AMD EPYC,
2 threads: forward 1.0-1.25x, input gradient 1.05-1.2x, weight gradient 1.3-1.55x; a whole
adapter step 1.1x, a full step 1.15x), so ``linear`` keeps to ``F.linear`` there
(``_onednn_gains``). The packed inference path (``taskmix.models.packed``) is not affected.

``linear`` takes that path for float32 CPU inputs large enough to gain (see ``_MIN_MACS``) and
falls back to ``F.linear`` everywhere else: a CPU without AVX-512, other devices or dtypes, CPU autocast, bias,
``torch.compile`` tracing, a torch without the op, a failed self-check, or when switched off.
The switch is the package's one oneDNN switch, ``taskmix.models.onednn`` (``TASKMIX_ONEDNN=0``
or ``set_onednn(False)``, for ablations), so decoding and training turn off together."""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from taskmix.models.onednn import mm_nt as _mm_nt
from taskmix.models.onednn import onednn_enabled, set_onednn
from taskmix.models.packed import PackedWeight, packed_linear, register_plain_linear

__all__ = ["Linear", "linear", "onednn_enabled", "set_onednn"]

# Below ~4M multiply-adds (e.g. one decoding row through a 512x512 projection) oneDNN's per-call
# overhead outweighs its faster kernel (measured: 0.66x at 1x512x512, 1.4x at 16x512x512).
_MIN_MACS = 1 << 22


class _OneDNNLinear(torch.autograd.Function):
    """y = x @ W^T on 2-D x, with both backward products through oneDNN as well.

    grad_x = g @ W passes the transposed view W.t() (no copy: as fast or faster than a
    contiguous copy). grad_W = g^T @ x passes the views g.t(), x.t(): oneDNN reorders them
    itself, and for T5-small's (tokens x d_ff) activations at 2 threads that beat both
    ``torch.mm(g.t(), x)`` (1.7x) and torch's own transposed copies."""

    @staticmethod
    def forward(ctx, x2d: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        need_x, need_w = ctx.needs_input_grad
        # save only what the wanted gradients use (weight for grad_x, input for grad_w)
        ctx.save_for_backward(x2d if need_w else None, weight if need_x else None)
        return _mm_nt(x2d, weight)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        x2d, weight = ctx.saved_tensors
        need_x, need_w = ctx.needs_input_grad
        grad = grad.contiguous()  # e.g. the expanded (stride-0) gradient of a .sum()
        grad_x = _mm_nt(grad, weight.t()) if need_x else None
        grad_w = _grad_weight(grad, x2d) if need_w else None
        return grad_x, grad_w


def _grad_weight(grad: torch.Tensor, x2d: torch.Tensor) -> torch.Tensor:
    """g^T @ x for (tokens, out) g and (tokens, in) x. Of the two transposed operands, torch
    copies the first to contiguous memory and oneDNN reorders the second (faster), so the
    narrower one goes first: for a (512 -> 2048) projection, x^T @ g then one small transpose
    of the (512 x 2048) result beat g^T @ x by about 1.2x."""
    if grad.shape[1] <= x2d.shape[1]:
        return _mm_nt(grad.t(), x2d.t())
    return _mm_nt(x2d.t(), grad.t()).t().contiguous()


@functools.cache
def _onednn_gains() -> bool:
    """Whether torch runs AVX-512 kernels on this CPU, where oneDNN's fp32 products beat MKL's
    (see the module docstring); read once."""
    return torch.backends.cpu.get_cpu_capability() == "AVX512"


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(x, weight, bias)``, through oneDNN for large enough float32 CPU inputs on a
    CPU with AVX-512."""
    if (
        bias is not None
        or torch.compiler.is_compiling()
        or not onednn_enabled(x)  # float32 CPU x, switched on, op present and self-checked
        or not _onednn_gains()
        or weight.dtype != torch.float32
        or weight.device.type != "cpu"
        or x.layout != torch.strided
        or weight.layout != torch.strided
        or x.dim() < 2
        or weight.dim() != 2
        or not weight.is_contiguous()
        or torch.is_autocast_enabled("cpu")
        or not torch.backends.mkldnn.enabled
    ):
        return F.linear(x, weight, bias)
    out_features, in_features = weight.shape
    if x.shape[-1] != in_features:
        return F.linear(x, weight)  # let F.linear raise its usual error
    x2d = x.reshape(-1, in_features)
    if (
        x2d.shape[0] * in_features * out_features < _MIN_MACS
        or x2d.stride(-1) != 1
        or x2d.stride(0) < in_features  # rows overlap (e.g. an expanded input)
    ):
        return F.linear(x, weight)
    if torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad):
        out = _OneDNNLinear.apply(x2d, weight)
    else:
        out = _mm_nt(x2d, weight)
    return out if x.dim() == 2 else out.view(*x.shape[:-1], out_features)  # 2-D: not a view


@register_plain_linear
class Linear(nn.Linear):
    """``nn.Linear`` whose forward uses ``linear`` (same parameters and state_dict keys, and
    ``isinstance(m, nn.Linear)`` still holds). While decoding (``packed.packed_weights``) it
    multiplies with a oneDNN-packed copy of its weight that it keeps until the weight changes."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        packed = self.__dict__.get("_packed")
        if packed is None:  # created lazily, so that any way of constructing the layer works
            packed = self._packed = PackedWeight()
        weight, bias = self.weight, self.bias
        if bias is None:
            out = packed_linear(x, (weight,), packed)
            if out is not None:
                return out
        return linear(x, weight, bias)
