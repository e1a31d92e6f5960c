"""Save LoRA updates in PEFT's format, so ``peft.PeftModel.from_pretrained`` loads them onto the
Hugging Face T5 that ``hf.save_hf_checkpoint`` writes for the base model.

PEFT's folder holds ``adapter_config.json`` and ``adapter_model.safetensors``, whose keys are
``base_model.model.<HF module path>.lora_A.weight`` / ``.lora_B.weight`` (the adapter name,
``default``, is left out of saved keys). taskmix's module paths are HF's, so a key is the
LoRA parameter's name with that prefix. Written without importing peft.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from safetensors.torch import save_file

from taskmix.errors import CheckpointError
from taskmix.models.lora import LoRAConfig, is_lora_parameter, lora_layers

ADAPTER_CONFIG_NAME = "adapter_config.json"
ADAPTER_WEIGHTS_NAME = "adapter_model.safetensors"
PEFT_PREFIX = "base_model.model."


def peft_state_dict(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors under PEFT's keys (a shared update under each name it has)."""
    return {
        PEFT_PREFIX + name: tensor.detach().to("cpu").contiguous().clone()
        for name, tensor in model.state_dict().items()
        if is_lora_parameter(name)
    }


def peft_adapter_config(
    model: torch.nn.Module, config: LoRAConfig, base_model_name_or_path: str | None = None
) -> dict:
    """PEFT's ``LoraConfig`` fields for ``config`` (the others take PEFT's defaults)."""
    architecture = getattr(getattr(model, "config", None), "architecture", "encoder_decoder")
    return {
        "peft_type": "LORA",
        "task_type": "SEQ_2_SEQ_LM" if architecture == "encoder_decoder" else "CAUSAL_LM",
        "base_model_name_or_path": base_model_name_or_path,
        "r": config.rank,
        "lora_alpha": config.alpha,
        "lora_dropout": config.dropout,
        "target_modules": sorted(config.target_modules),
        "bias": "none",
        "fan_in_fan_out": False,
        "inference_mode": True,
        "init_lora_weights": True,
        "use_rslora": False,
        "use_dora": False,
        "modules_to_save": None,
    }


def save_peft_adapter(
    model: torch.nn.Module,
    config: LoRAConfig,
    folder: str | os.PathLike,
    *,
    base_model_name_or_path: str | None = None,
) -> Path:
    """Write ``model``'s LoRA updates to ``folder`` in PEFT's format. The updates must not be
    merged (PEFT adds them to base weights that must not contain them already)."""
    layers = lora_layers(model)
    if not layers:
        raise CheckpointError(f"{folder}: the model has no LoRA layers to save")
    if any(layer.merged for layer in layers):
        raise CheckpointError(f"{folder}: LoRA updates are merged; unmerge them before saving")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file(peft_state_dict(model), str(folder / ADAPTER_WEIGHTS_NAME), metadata={"format": "pt"})
    adapter_config = peft_adapter_config(model, config, base_model_name_or_path)
    (folder / ADAPTER_CONFIG_NAME).write_text(json.dumps(adapter_config, indent=2) + "\n")
    return folder
