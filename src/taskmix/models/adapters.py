"""Bottleneck adapters (T5 §3.5.1, Houlsby et al. 2019): parameter-efficient fine-tuning.

A small dense-activation-dense block with inner dimension ``d`` and a residual is added after
the feed-forward of every block of the encoder and decoder. Its output dimension equals its
input dimension, so it can be inserted without changing the rest of the model. The
up-projection starts at zero: an adapted model computes exactly what its base does until the
adapters are trained. Fine-tuning then updates only the adapters (and, as in T5, the layer
norms): ``trainable_parameter_names``.

Placement (``AdapterConfig.placement``), with ``f`` the feed-forward's output on the block
input ``x``:

* ``"feed_forward"`` (Houlsby's): ``x + f + A(f)``, the adapter reads the feed-forward output.
  This is what T5 describes ("a dense-ReLU-dense block added after each of the preexisting
  feed-forward networks") and the default.
* ``"sum"`` (Pfeiffer's): ``y + A(y)`` with ``y = x + f``, the adapter reads the residual sum.

The feed-forward layer (``LayerFF``) is replaced by ``AdaptedLayerFF``, which keeps the same
children under the same names, so the base parameters keep their names (and Hugging Face
checkpoint keys); the adapter's parameters are named ``...layer.<i>.adapter.{down,up}.*``.
Decoding calls the blocks' feed-forward layer as it is, so adapters are run by cached and
uncached decoding alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from taskmix.errors import ConfigError
from taskmix.models.config import dataclass_from_dict
from taskmix.models.layers import Block, LayerFF, Stack, T5LayerNorm

ADAPTER_MODULE = "adapter"  # the adapters' module name: their parameters contain ".adapter."
PLACEMENTS = ("feed_forward", "sum")
ACTIVATIONS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": F.relu,
    "gelu": F.gelu,
}


@dataclass
class AdapterConfig:
    """Exactly one of ``dim`` (the bottleneck size d) and ``reduction_factor`` (d = d_model /
    reduction_factor, rounded down, at least 1). ``train_layer_norms``: whether
    ``trainable_parameter_names`` includes the layer norms (T5 trains them with the adapters)."""

    dim: int | None = None
    reduction_factor: float | None = None
    activation: str = "relu"
    placement: str = "feed_forward"
    train_layer_norms: bool = True

    def validate(self) -> None:
        if (self.dim is None) == (self.reduction_factor is None):
            raise ConfigError(
                "adapters: give exactly one of 'dim' and 'reduction_factor', got "
                f"dim={self.dim!r}, reduction_factor={self.reduction_factor!r}"
            )
        if self.dim is not None and (not isinstance(self.dim, int) or self.dim <= 0):
            raise ConfigError(f"adapters.dim: expected a positive integer, got {self.dim!r}")
        if self.reduction_factor is not None and not self.reduction_factor > 0:
            raise ConfigError(
                f"adapters.reduction_factor: expected a positive number, got {self.reduction_factor!r}"
            )
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"adapters.activation: expected one of {sorted(ACTIVATIONS)}, got {self.activation!r}"
            )
        if self.placement not in PLACEMENTS:
            raise ConfigError(
                f"adapters.placement: expected one of {list(PLACEMENTS)}, got {self.placement!r}"
            )

    def bottleneck(self, d_model: int) -> int:
        if self.dim is not None:
            return self.dim
        return max(1, int(d_model / self.reduction_factor))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AdapterConfig:
        """From a config mapping; an unknown key is a ConfigError naming it."""
        return dataclass_from_dict(cls, data, "adapters")


class Adapter(nn.Module):
    """``A(h) = up(act(down(h)))`` (the residual is added by the caller). ``up`` starts at zero
    so that A is 0 at step 0; ``down`` gets T5's ``wi`` initialisation scale so that the first
    updates of ``up`` see activations of a sensible size."""

    def __init__(self, d_model: int, dim: int, activation: str = "relu"):
        super().__init__()
        self.down = nn.Linear(d_model, dim)
        self.up = nn.Linear(dim, d_model)
        self.activation = activation
        nn.init.normal_(self.down.weight, std=d_model**-0.5)
        nn.init.zeros_(self.down.bias)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.up(ACTIVATIONS[self.activation](self.down(h)))


class AdaptedLayerFF(nn.Module):
    """``LayerFF`` with an adapter; the feed-forward's children keep their names."""

    def __init__(self, base: LayerFF, adapter: Adapter, placement: str):
        super().__init__()
        self.DenseReluDense = base.DenseReluDense
        self.layer_norm = base.layer_norm
        self.dropout = base.dropout
        self.adapter = adapter
        self.placement = placement

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = self.dropout(self.DenseReluDense(self.layer_norm(x)))
        if self.placement == "feed_forward":
            return x + f + self.adapter(f)
        y = x + f
        return y + self.adapter(y)


def _stacks(model: nn.Module) -> list[Stack]:
    stacks = [getattr(model, name, None) for name in ("encoder", "decoder")]
    return [s for s in stacks if isinstance(s, Stack)]


def add_adapters(model: nn.Module, config: AdapterConfig) -> list[str]:
    """Add an adapter after the feed-forward of every block of ``model`` (a ``T5Model`` or
    ``DecoderOnlyLM``), in place; the names of the parameters added. A feed-forward shared by
    encoder and decoder (``shared_encoder_decoder``) gets one adapter, shared likewise.
    A model without taskmix T5 stacks, or one already adapted, is a ConfigError."""
    config.validate()
    stacks = _stacks(model)
    if not stacks:
        raise ConfigError(
            f"adapters: unsupported model {type(model).__name__} (expected a taskmix T5Model or "
            "DecoderOnlyLM with encoder/decoder stacks)"
        )
    d_model = model.config.d_model
    dim = config.bottleneck(d_model)
    replaced: dict[int, AdaptedLayerFF] = {}  # id(LayerFF) -> its replacement (shared ones)
    for stack in stacks:
        for block in stack.block:
            ff = block.layer[-1] if isinstance(block, Block) else None
            if isinstance(ff, AdaptedLayerFF):
                raise ConfigError("adapters: the model already has adapters")
            if not isinstance(ff, LayerFF):
                raise ConfigError(
                    f"adapters: unsupported block {type(block).__name__} (its last layer is "
                    f"{type(ff).__name__}, not a T5 feed-forward)"
                )
            if id(ff) not in replaced:
                adapter = Adapter(d_model, dim, config.activation)
                adapter.to(device=ff.layer_norm.weight.device, dtype=ff.layer_norm.weight.dtype)
                replaced[id(ff)] = AdaptedLayerFF(ff, adapter, config.placement)
            block.layer[-1] = replaced[id(ff)]
    return [name for name, _ in model.named_parameters() if is_adapter_parameter(name)]


def is_adapter_parameter(name: str) -> bool:
    """Whether a parameter name (as ``named_parameters`` gives it) belongs to an adapter."""
    return f".{ADAPTER_MODULE}." in f".{name}"


def layer_norm_parameter_names(model: nn.Module) -> list[str]:
    """The names of every T5 layer norm's scale (blocks' and final ones)."""
    return [
        f"{module_name}.{param_name}" if module_name else param_name
        for module_name, module in model.named_modules()
        if isinstance(module, T5LayerNorm)
        for param_name, _ in module.named_parameters(recurse=False)
    ]


def trainable_parameter_names(model: nn.Module, config: AdapterConfig) -> list[str]:
    """What to train for adapter fine-tuning: the adapters, plus the layer norms if
    ``config.train_layer_norms``; in ``named_parameters`` order (shared parameters once)."""
    wanted = {name for name, _ in model.named_parameters() if is_adapter_parameter(name)}
    if config.train_layer_norms:
        wanted.update(layer_norm_parameter_names(model))
    return [name for name, _ in model.named_parameters() if name in wanted]


def freeze_all_but(model: nn.Module, names: list[str]) -> None:
    """``requires_grad`` True on the named parameters, False on every other one."""
    keep = set(names)
    for name, param in model.named_parameters():
        param.requires_grad_(name in keep)
