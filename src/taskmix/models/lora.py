"""LoRA (Hu et al. 2021): low-rank updates of the attention and feed-forward projections.

A target projection ``W`` (out, in) becomes ``W x + (alpha / rank) * B A dropout(x)`` with
``A`` (rank, in) and ``B`` (out, rank). ``B`` starts at zero, so a LoRA model computes exactly
what its base does until trained. ``merge()`` folds ``(alpha / rank) * B A`` into ``W`` (no
extra cost at inference), ``unmerge()`` takes it back out.

Targets are named as Hugging Face / PEFT name T5's modules: ``q``, ``k``, ``v``, ``o``
(attention, self and cross), ``wi`` or ``wi_0``, ``wi_1`` and ``wo`` (feed-forward). A target
matches every module whose last name component equals it.

The projection is replaced by a ``LoRALinear`` that holds the same ``weight`` parameter under
the same name plus ``lora_A`` and ``lora_B``, so base parameter names (and Hugging Face keys)
do not change and the LoRA parameters are ``<module path>.lora_A.weight`` /
``.lora_B.weight``, as PEFT stores them. ``LoRALinear`` is not a plain ``nn.Linear``, so the
fast paths that use a projection's weight directly (``packed.is_plain_linear``) call it instead:
decoding runs the low-rank update too. The one exception is attention's fused projections
(self-attention's q, k and v, cross-attention's k and v): ``fused_projection`` computes them as
one product with the stacked base weights plus one low-rank product with the stacked updates,
which is what calling each layer computes, to fp32 rounding.

The base product goes through ``cpu_linear.linear``, as plain projections do (oneDNN where it
beats MKL); a frozen base weight gets no gradient and costs no weight-gradient product. The update is
added by one ``addmm`` with ``alpha`` = scaling: no separate scaling and sum passes over the
output in the forward, nor a scaling pass over its gradient in the backward.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taskmix.errors import ConfigError
from taskmix.models.config import dataclass_from_dict
from taskmix.models.cpu_linear import Linear, linear
from taskmix.models.packed import PackedWeight, is_plain_linear, packed_linear

LORA_NAMES = ("lora_A", "lora_B")
DEFAULT_TARGETS = ("q", "v")  # as in the LoRA paper and PEFT's T5 default


@dataclass
class LoRAConfig:
    """``rank`` r > 0; ``alpha``: the update is scaled by alpha / r; ``dropout``: applied to
    the input of the low-rank branch only (training); ``target_modules``: module names to adapt
    (see the module docstring)."""

    rank: int = 8
    alpha: float = 16.0
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: list(DEFAULT_TARGETS))

    @property
    def scaling(self) -> float:
        return self.alpha / self.rank

    def validate(self) -> None:
        if not isinstance(self.rank, int) or self.rank <= 0:
            raise ConfigError(f"lora.rank: expected a positive integer, got {self.rank!r}")
        if not isinstance(self.alpha, int | float) or not math.isfinite(self.alpha):
            raise ConfigError(f"lora.alpha: expected a finite number, got {self.alpha!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lora.dropout: expected a rate in [0, 1), got {self.dropout!r}")
        if isinstance(self.target_modules, str) or not self.target_modules:
            raise ConfigError(
                f"lora.target_modules: expected a non-empty list of module names, got "
                f"{self.target_modules!r}"
            )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoRAConfig:
        """From a config mapping; an unknown key is a ConfigError naming it."""
        return dataclass_from_dict(cls, data, "lora")


class LoRALinear(nn.Module):
    """A bias-free projection with a low-rank update. ``weight`` is the base layer's parameter
    itself (not a copy); ``lora_A`` gets PEFT's default (Kaiming-uniform) initialisation and
    ``lora_B`` zeros. The dropout rate is a float, not an ``nn.Dropout``, so that changing the
    model's dropout (``set_dropout``) leaves it alone."""

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        if base.bias is not None:
            raise ConfigError("lora: target projections must be bias-free (T5's are)")
        self.in_features = base.in_features
        self.out_features = base.out_features
        self.weight = base.weight
        self.bias = None
        factory = {"device": base.weight.device, "dtype": base.weight.dtype}
        self.lora_A = nn.Linear(base.in_features, rank, bias=False, **factory)
        self.lora_B = nn.Linear(rank, base.out_features, bias=False, **factory)
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)
        self.rank = rank
        self.scaling = alpha / rank
        self.dropout = dropout
        self.merged = False

    def delta_weight(self) -> torch.Tensor:
        """``scaling * B @ A`` (out, in): what ``merge`` adds to ``weight``."""
        return (self.lora_B.weight @ self.lora_A.weight) * self.scaling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = linear(x, self.weight)
        if self.merged:
            return out
        h = F.dropout(x, self.dropout, self.training) if self.dropout else x
        if not is_plain_linear(self.lora_B):  # a hooked lora_B is called as it is
            return out + self.lora_B(self.lora_A(h)) * self.scaling
        return _add_low_rank(out, self.lora_A(h), self.lora_B.weight, self.scaling)

    def fusable(self) -> bool:
        """Whether ``fused_projection`` may compute this layer from its weights: no hooks on
        it or its LoRA projections, and no dropout in effect."""
        return (
            type(self) is LoRALinear
            and not self._forward_hooks
            and not self._forward_pre_hooks
            and is_plain_linear(self.lora_A)
            and is_plain_linear(self.lora_B)
            and not (self.dropout and self.training)
        )

    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into ``weight`` (in place: packed copies see the change)."""
        if not self.merged:
            self.weight.add_(self.delta_weight().to(self.weight.dtype))
            self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Take the update back out of ``weight`` (exact up to floating-point rounding)."""
        if self.merged:
            self.weight.sub_(self.delta_weight().to(self.weight.dtype))
            self.merged = False

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"rank={self.rank}, scaling={self.scaling}, merged={self.merged}"
        )


def _add_low_rank(
    out: torch.Tensor, h: torch.Tensor, b: torch.Tensor, scaling: float
) -> torch.Tensor:
    """``out + scaling * h @ b.T`` as one ``addmm`` on 2-D views."""
    rows = out.reshape(-1, out.shape[-1])
    return torch.addmm(rows, h.reshape(-1, h.shape[-1]), b.t(), alpha=scaling).view(out.shape)


def fused_projection(
    x: torch.Tensor, layers: tuple[nn.Module, ...], packed: PackedWeight
) -> torch.Tensor | None:
    """The outputs of ``layers`` (plain bias-free projections and ``LoRALinear``s, at least one)
    on ``x``, side by side, as ``Attention._project`` computes plain ones: one product with the
    stacked base weights (on ``packed`` while decoding), plus ``h @ B.T`` with ``h = x @ A.T``
    for the stacked A of every unmerged update and B the block matrix holding each update's
    ``scaling * lora_B`` in its rows (zeros for the plain layers). x is read twice instead of
    once per layer, its gradient is one sum instead of several, and there is no concatenation
    of outputs. None if some layer is neither kind or cannot be fused (``LoRALinear.fusable``):
    the caller calls the layers."""
    updates = []  # (first output column, layer) of each unmerged update
    column = 0
    for layer in layers:
        if isinstance(layer, LoRALinear):
            if not layer.fusable():
                return None
            if not layer.merged:
                updates.append((column, layer))
            column += layer.out_features
        elif is_plain_linear(layer):
            column += layer.weight.shape[0]
        else:
            return None
    weights = [layer.weight for layer in layers]
    out = packed_linear(x, weights, packed)
    if out is None:
        out = linear(x, torch.cat(weights))
    if not updates:
        return out
    a = torch.cat([layer.lora_A.weight for _, layer in updates])
    rank, blocks, row, done = a.shape[0], [], 0, 0
    for start, layer in updates:
        r = layer.rank
        if start > row:  # plain layers' rows
            blocks.append(a.new_zeros(start - row, rank))
        blocks.append(F.pad(layer.lora_B.weight * layer.scaling, (done, rank - done - r)))
        row, done = start + layer.out_features, done + r
    if column > row:
        blocks.append(a.new_zeros(column - row, rank))
    return _add_low_rank(out, F.linear(x, a), torch.cat(blocks), 1.0)


def add_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Replace every target projection of ``model`` by a ``LoRALinear``, in place; the names
    of the parameters added. A projection shared by encoder and decoder gets one (shared)
    update. A target naming no ``nn.Linear`` of the model is a ConfigError naming it."""
    config.validate()
    targets = set(config.target_modules)
    found: set[str] = set()
    replaced: dict[int, LoRALinear] = {}  # id(base layer) -> its replacement (shared layers)
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            if child_name not in targets:
                continue
            if isinstance(child, LoRALinear):
                raise ConfigError(f"lora: {parent_name}.{child_name} already has LoRA")
            if not isinstance(child, nn.Linear):
                continue
            found.add(child_name)
            if id(child) not in replaced:
                replaced[id(child)] = LoRALinear(child, config.rank, config.alpha, config.dropout)
            setattr(parent, child_name, replaced[id(child)])
    missing = sorted(targets - found)
    if missing:
        raise ConfigError(
            f"lora.target_modules: {missing[0]!r} names no projection of "
            f"{type(model).__name__} (T5 names: q, k, v, o, wi or wi_0/wi_1, wo)"
        )
    return [name for name, _ in model.named_parameters() if is_lora_parameter(name)]


def is_lora_parameter(name: str) -> bool:
    """Whether a parameter name (as ``named_parameters`` gives it) belongs to a LoRA update."""
    parts = name.split(".")
    return any(part in LORA_NAMES for part in parts)


def lora_layers(model: nn.Module) -> list[LoRALinear]:
    return [m for m in model.modules() if isinstance(m, LoRALinear)]


def merge_lora(model: nn.Module) -> None:
    """Fold every LoRA update into its base weight (inference at the base model's cost)."""
    for layer in lora_layers(model):
        layer.merge()


def unmerge_lora(model: nn.Module) -> None:
    """Undo ``merge_lora`` (to train further or to save the updates separately)."""
    for layer in lora_layers(model):
        layer.unmerge()


def unload_lora(model: nn.Module) -> None:
    """Merge every LoRA update and put plain projections back (holding the merged weights):
    a merged ``LoRALinear`` computes what its base layer would, but it is not a plain
    projection, so the fused and packed fast paths skip it; after this they apply again. The
    LoRA parameters are dropped."""
    replaced: dict[int, nn.Module] = {}
    for parent in list(model.modules()):
        for child_name, child in list(parent.named_children()):
            if not isinstance(child, LoRALinear):
                continue
            if id(child) not in replaced:
                child.merge()
                plain = Linear(child.in_features, child.out_features, bias=False, device="meta")
                plain.weight = child.weight
                replaced[id(child)] = plain
            setattr(parent, child_name, replaced[id(child)])
