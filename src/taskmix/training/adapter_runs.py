"""Several adapter runs on one base model, switched without reloading the base.

An adapter run's checkpoint holds only its trained tensors (the adapter, and the layer norms
when a bottleneck adapter trains them) plus the base's fingerprint. ``adapter_tensors`` reads
them after checking that ``model`` is that base; ``swap_adapter`` copies them into the model's
adapter parameters in place. Load the base with one run's adapter (``load_run``), then::

    tensors = {name: adapter_tensors(model, run) for name, run in runs.items()}
    swap_adapter(model, tensors["sentiment"])  # now computes what the sentiment run does

Every run must use the same adapter config (same kind and shapes) on the same base.
"""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

from taskmix.errors import CheckpointError
from taskmix.models.lora import lora_layers
from taskmix.training.checkpoint import (
    MODEL_FILE,
    read_state,
    tensors_fingerprint,
    verify_checkpoint,
)
from taskmix.training.runs import find_checkpoint, load_run_config

__all__ = ["adapter_tensors", "swap_adapter"]


def adapter_tensors(
    model: nn.Module, run_dir: str | Path, checkpoint: str = "last"
) -> dict[str, torch.Tensor]:
    """The trained tensors of an adapter run's checkpoint. ``model`` must be the run's base
    with an adapter of the same config: another base (frozen tensors whose SHA-256 differs
    from the recorded one) or a run without ``model.adapter`` is a CheckpointError."""
    run_dir = Path(run_dir)
    if load_run_config(run_dir).model.adapter is None:
        raise CheckpointError(f"{run_dir}: not an adapter run (its config has no model.adapter)")
    path = find_checkpoint(run_dir, checkpoint)
    verify_checkpoint(path)
    frozen = read_state(path).get("frozen") or {}
    keys = frozen.get("keys") or []
    missing = sorted(set(keys) - set(model.state_dict()))
    if missing or tensors_fingerprint(model, keys) != frozen.get("sha256"):
        raise CheckpointError(
            f"{path}: adapter trained on another base model ({frozen.get('init_from')}); this "
            "model's frozen weights differ (SHA-256"
            + (f"; missing {missing[:3]})" if missing else ")")
        )
    return load_file(path / MODEL_FILE)


@torch.no_grad()
def swap_adapter(model: nn.Module, tensors: dict[str, torch.Tensor]) -> None:
    """Copy an adapter's tensors (``adapter_tensors``) into ``model`` in place; the base is not
    touched. A name the model lacks or another shape is a CheckpointError (another adapter
    config); LoRA updates must not be merged."""
    if any(layer.merged for layer in lora_layers(model)):
        raise CheckpointError("swap_adapter: the model's LoRA updates are merged; unmerge first")
    params = dict(model.named_parameters(remove_duplicate=False))
    for name, value in tensors.items():
        param = params.get(name)
        if param is None or param.shape != value.shape:
            have = "no such parameter" if param is None else f"shape {tuple(param.shape)}"
            raise CheckpointError(
                f"swap_adapter: {name} {tuple(value.shape)} does not fit the model ({have}); "
                "load adapters of the same config"
            )
    for name, value in tensors.items():
        params[name].copy_(value.to(params[name].dtype))
