"""Inference fast path of the projections: oneDNN-packed weights, kept on the module that owns them.

Decoding runs the same projections on a few rows per step, dozens of times per batch. oneDNN
multiplies faster with a weight reordered once into its blocked layout ("packed") than with the
plain (out, in) tensor, and it can apply an activation or a multiplication to the product's
output on the fly. The modules themselves keep those packed copies (``Linear``, ``Attention``'s
fused q/k/v, the feed-forward, the tied LM head each own a ``PackedWeight``), so a wrapped,
hooked or replaced layer is called as it is, never bypassed by a copy of its weights held
somewhere else.

The packed path is taken only inside ``packed_weights()`` (entered by greedy decoding and rank
classification), without gradients, for fp32 CPU inputs with oneDNN on and products large
enough to gain. Elsewhere, training and plain forwards included, nothing changes and no packed
copy is made: packing costs a pass over the weights, and the copies as much memory as the
weights they copy. A copy is rebuilt when its source parameter is replaced or updated in place
(its ``data_ptr`` or version counter changes: optimizer steps, ``load_state_dict``,
``param.mul_()``); writes through ``param.data`` bypass the version counter and are not seen.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.modules import module as _module

from taskmix.models.onednn import onednn_enabled

# Below ~4M multiply-adds per product oneDNN's per-call overhead (~11 us more than torch.mm's
# here) eats its faster kernel: at 32 x 256 x 256 both take ~50 us, so F.linear does those.
_MIN_MACS = 1 << 20

_ENABLED: contextvars.ContextVar[bool] = contextvars.ContextVar("taskmix_packed", default=False)
_PLAIN_TYPES: set[type] = {nn.Linear}  # + register_plain_linear (taskmix's Linear)
_linear_pointwise = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
# torch's module-wide hook registries (``register_module_forward_hook``), mutated in place
_GLOBAL_HOOKS = tuple(
    getattr(_module, name, {}) for name in ("_global_forward_hooks", "_global_forward_pre_hooks")
)


@contextlib.contextmanager
def packed_weights() -> Iterator[None]:
    """Let the projections run on packed weights (see the module docstring). Whatever rules the
    packed path out for the whole call (oneDNN switched off or missing, CPU autocast, tracing)
    is checked once here, not at every product."""
    usable = (
        _linear_pointwise is not None
        and torch.backends.mkldnn.enabled
        and not torch.is_autocast_enabled("cpu")
        and not torch.compiler.is_compiling()
    )
    token = _ENABLED.set(usable)
    try:
        yield
    finally:
        _ENABLED.reset(token)


def register_plain_linear(cls: type[nn.Linear]) -> type[nn.Linear]:
    """Declare an ``nn.Linear`` subclass whose forward computes exactly ``F.linear(x, weight,
    bias)`` (taskmix's ``Linear``), so that ``is_plain_linear`` accepts it."""
    _PLAIN_TYPES.add(cls)
    return cls


def is_plain_linear(layer: nn.Module) -> bool:
    """A bias-free ``nn.Linear`` (or taskmix ``Linear``) with no hooks: its output is exactly
    ``x @ weight.T``, so fusing its weight with others' gives the same result as calling it. A
    subclass, a wrapper or a hooked layer must be called instead."""
    return (
        type(layer) in _PLAIN_TYPES
        and not layer._forward_hooks
        and not layer._forward_pre_hooks
        and not _GLOBAL_HOOKS[0]
        and not _GLOBAL_HOOKS[1]
        and layer.bias is None
    )


class PackedWeight:
    """A oneDNN-packed copy of one weight, or of several stacked along the output dimension,
    built on first use and rebuilt when a source is replaced or updated in place. Dropped when
    the owning module is copied or pickled (an opaque oneDNN tensor can be neither)."""

    __slots__ = ("_state",)

    def __init__(self) -> None:
        # (key of the sources, packed tensor, (out_features, in_features)), replaced as a whole
        # so that a reader never sees half of an update
        self._state: tuple | None = None

    @property
    def tensor(self) -> torch.Tensor | None:
        """The packed copy, if one has been made (for inspection)."""
        return None if self._state is None else self._state[1]

    def linear(
        self,
        x: torch.Tensor,
        weights: Sequence[torch.Tensor],
        activation: str = "none",
        multiply: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """See ``packed_linear`` (this is it, once the context and gradient checks pass)."""
        if x.dim() < 2 or not x.is_contiguous() or not onednn_enabled(x):  # fp32 CPU, on
            return None
        in_features = x.shape[-1]
        out_features = sum(w.shape[0] for w in weights)
        rows = x.numel() // in_features if in_features else 0
        if rows * in_features * out_features < _MIN_MACS:
            return None
        try:
            key = tuple([(w.data_ptr(), w._version) for w in weights])
        except RuntimeError:  # an inference tensor has no version counter: never cached
            key = None
        state = self._state
        if key is None or state is None or state[0] != key:
            state = self._repack(weights, key)
        if state is None or state[2] != (out_features, in_features):
            return None
        packed, x2d = state[1], x.view(rows, in_features)
        if multiply is not None:
            other = multiply.reshape(rows, out_features)
            out = _linear_pointwise.binary(x2d, other, packed, None, "mul")
        elif activation == "gelu_tanh":
            out = _linear_pointwise(x2d, packed, None, "gelu", [], "tanh")
        else:
            out = _linear_pointwise(x2d, packed, None, activation, [], "")
        return out.view(*x.shape[:-1], out_features)

    def _repack(self, weights: Sequence[torch.Tensor], key: tuple | None) -> tuple | None:
        """Pack ``weights`` (the new state), or None for weights oneDNN does not take."""
        in_features = weights[0].shape[-1]
        state = None
        if all(
            w.dim() == 2
            and w.shape[1] == in_features
            and w.dtype == torch.float32
            and w.device.type == "cpu"
            and w.layout == torch.strided
            for w in weights
        ):
            weight = weights[0] if len(weights) == 1 else torch.cat(list(weights))
            packed = torch.ops.mkldnn._reorder_linear_weight(weight.detach().contiguous(), None)
            state = (key, packed, tuple(weight.shape))
        self._state = state
        return state

    def __getstate__(self) -> dict:
        return {}

    def __setstate__(self, state: dict) -> None:
        self.__init__()


def packed_linear(
    x: torch.Tensor,
    weights: Sequence[torch.Tensor],
    packed: PackedWeight,
    *,
    activation: str = "none",
    multiply: torch.Tensor | None = None,
) -> torch.Tensor | None:
    """``x @ cat(weights).T`` on the packed copy in ``packed``, or None where the packed path
    does not apply (outside ``packed_weights()``, with gradients, not fp32 CPU, oneDNN off, or a
    product too small to gain); the caller then computes it as usual.

    oneDNN applies an elementwise step to the product's output while it is still in registers:
    ``activation`` (``"relu"`` or ``"gelu_tanh"``), or ``multiply`` by a tensor of the output's
    shape. That saves a pass over the output and its temporaries; the result equals the
    separate ops to fp32 rounding."""
    if not _ENABLED.get() or torch.is_grad_enabled():
        return None
    return packed.linear(x, weights, activation, multiply)
