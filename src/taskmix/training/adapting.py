"""``model.adapter``: adapter-only runs (bottleneck adapters or LoRA on a frozen base).

``model.adapter`` is a mapping with ``kind: bottleneck`` (``models.adapters.AdapterConfig``
keys: ``dim`` or ``reduction_factor``, ``activation``, ``placement``, ``train_layer_norms``)
or ``kind: lora`` (``models.lora.LoRAConfig`` keys: ``rank``, ``alpha``, ``dropout``,
``target_modules``). It needs ``model.init_from``: the base weights are loaded from there, the
adapter is added, and by default only the adapter's parameters are trained (plus the layer
norms for a bottleneck adapter with ``train_layer_norms``), so checkpoints hold only those
tensors and the base's fingerprint (``training.trainable.frozen_record``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from taskmix.errors import ConfigError
from taskmix.models import T5Config, build_model
from taskmix.models.adapters import AdapterConfig, add_adapters, trainable_parameter_names
from taskmix.models.lora import LoRAConfig, add_lora, is_lora_parameter

KINDS = ("bottleneck", "lora")
KEY = "model.adapter"


def parse_adapter(data: dict[str, Any] | None) -> AdapterConfig | LoRAConfig | None:
    """``model.adapter`` as an ``AdapterConfig`` or ``LoRAConfig``; a ConfigError naming
    ``model.adapter.<key>`` for a bad one."""
    if data is None:
        return None
    if not isinstance(data, dict):
        raise ConfigError(f"{KEY}: expected a mapping with 'kind', got {data!r}")
    rest = dict(data)
    kind = rest.pop("kind", None)
    if kind not in KINDS:
        raise ConfigError(f"{KEY}.kind: expected one of {list(KINDS)}, got {kind!r}")
    cls, prefix = (AdapterConfig, "adapters") if kind == "bottleneck" else (LoRAConfig, "lora")
    try:
        return cls.from_dict(rest)
    except ConfigError as err:
        raise ConfigError(_renamed(str(err), prefix)) from None
    except TypeError as err:  # e.g. a list where a number belongs
        raise ConfigError(f"{KEY}: {err}") from None


def _renamed(message: str, prefix: str) -> str:
    """``adapters.dim: ...`` / ``lora.rank: ...`` -> ``model.adapter.<key>: ...``."""
    if message.startswith(prefix):
        return KEY + message[len(prefix) :]
    return f"{KEY}: {message}"


def apply_adapter(model: nn.Module, adapter: AdapterConfig | LoRAConfig | None) -> None:
    """Add the adapter to ``model`` in place (nothing if None); errors name ``model.adapter``."""
    if adapter is None:
        return
    prefix = "lora" if isinstance(adapter, LoRAConfig) else "adapters"
    try:
        if isinstance(adapter, LoRAConfig):
            add_lora(model, adapter)
        else:
            add_adapters(model, adapter)
    except ConfigError as err:
        raise ConfigError(_renamed(str(err), prefix)) from None


def adapter_parameter_names(model: nn.Module, adapter: AdapterConfig | LoRAConfig) -> list[str]:
    """What an adapter run trains unless ``model.trainable`` says otherwise."""
    if isinstance(adapter, LoRAConfig):
        return [name for name, _ in model.named_parameters() if is_lora_parameter(name)]
    return trainable_parameter_names(model, adapter)


def adapter_predicate(model: nn.Module, config: Any) -> Any:
    """For ``select_trainable``: the adapter's parameters (``adapter_parameter_names``) of a
    ``TrainConfig`` with ``model.adapter``; None without one (train everything)."""
    adapter = parse_adapter(config.model.adapter)
    if adapter is None:
        return None
    names = set(adapter_parameter_names(model, adapter))
    return lambda name, _param: name in names


def adapted_shape_model(shape: T5Config, adapter: AdapterConfig | LoRAConfig | None) -> nn.Module:
    """A model of ``shape`` with the adapter, on the meta device (names only, no memory):
    applying the adapter checks it fits the architecture and that LoRA targets exist."""
    with torch.device("meta"):
        model = build_model(shape)
        apply_adapter(model, adapter)
    return model


def check_adapter(data: dict[str, Any] | None, init_from: str | None, shape: T5Config) -> None:
    """``model.adapter`` is valid, has a base to adapt, and fits a model of ``shape``."""
    adapter = parse_adapter(data)
    if adapter is None:
        return
    if not init_from:
        raise ConfigError(
            f"{KEY}: needs model.init_from (the base model to adapter-tune: a taskmix run or "
            "checkpoint folder, or a Hugging Face T5 folder)"
        )
    adapted_shape_model(shape, adapter)
