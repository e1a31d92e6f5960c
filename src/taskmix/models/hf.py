"""Read and write Hugging Face T5 checkpoints: ``config.json`` + safetensors, never pickle.

Our parameter names are HF's, so mapping is a matter of skipping the aliases HF keeps
(``encoder.embed_tokens`` / ``decoder.embed_tokens`` are the shared embedding) and handling the
tied output projection. A folder written by :func:`save_hf_checkpoint` loads with
``transformers.T5ForConditionalGeneration.from_pretrained`` (encoder-decoder models, shared or
not: shared weights are written twice). Decoder-only and prefix-LM models use the same format with
a ``taskmix_architecture`` key that transformers cannot load.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from taskmix.errors import CheckpointError
from taskmix.models import build_model
from taskmix.models.config import T5Config
from taskmix.models.decoder_only import DecoderOnlyLM
from taskmix.models.t5 import T5Model

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
INDEX_NAME = "model.safetensors.index.json"
PICKLE_NAMES = ("pytorch_model.bin", "pytorch_model.bin.index.json")

# Keys HF checkpoints may carry that alias other weights or are unused by T5.
_ALIASES = ("encoder.embed_tokens.weight", "decoder.embed_tokens.weight")
_UNUSED = ("decoder.block.0.layer.1.EncDecAttention.relative_attention_bias.weight",)


def load_hf_checkpoint(
    folder: str | os.PathLike,
    *,
    vocab_size: int | None = None,
    allow_bin: bool = False,
    dtype: torch.dtype | None = None,
) -> T5Model | DecoderOnlyLM:
    """Load a T5 checkpoint folder into our model (eval mode).

    ``vocab_size``: the size of the vocabulary you will feed it; a model whose embedding is
    smaller raises. ``allow_bin`` loads ``pytorch_model.bin`` with ``torch.load(weights_only=True)``
    (no arbitrary code), otherwise such folders are refused with a conversion hint."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(
            f"{folder}: not a checkpoint folder (expected {CONFIG_NAME} + {WEIGHTS_NAME})"
        )
    config = T5Config.from_hf_config(
        _read_json(folder / CONFIG_NAME), source=str(folder / CONFIG_NAME)
    )
    if vocab_size is not None and vocab_size > config.vocab_size:
        raise CheckpointError(
            f"{folder / CONFIG_NAME}: vocab_size {config.vocab_size} is smaller than the vocabulary "
            f"used with it ({vocab_size} ids); this checkpoint was trained with another vocabulary"
        )
    weights = _read_weights(folder, allow_bin)
    model = build_model(config)
    load_weights(model, weights, folder)
    if dtype is not None:
        model = model.to(dtype)
    return model.eval()


def save_hf_checkpoint(
    model: T5Model | DecoderOnlyLM, folder: str | os.PathLike, *, overwrite: bool = False
) -> Path:
    """Write ``config.json``, ``generation_config.json`` and ``model.safetensors`` atomically:
    everything goes to a temporary sibling folder that is renamed into place at the end."""
    folder = Path(folder)
    if folder.exists() and not overwrite:
        raise CheckpointError(f"{folder}: already exists (pass overwrite=True to replace it)")
    folder.parent.mkdir(parents=True, exist_ok=True)
    config: T5Config = model.config
    tensors = {
        # clone: shared parameters appear under two names and safetensors refuses shared storage
        name: tensor.detach().to("cpu").contiguous().clone()
        for name, tensor in model.state_dict().items()
    }
    hf_config = config.to_hf_config()
    hf_config["dtype"] = str(next(model.parameters()).dtype).removeprefix("torch.")
    generation = {
        "decoder_start_token_id": config.decoder_start_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
    }
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        save_file(tensors, str(tmp / WEIGHTS_NAME), metadata={"format": "pt"})
        (tmp / CONFIG_NAME).write_text(json.dumps(hf_config, indent=2, sort_keys=True) + "\n")
        (tmp / "generation_config.json").write_text(json.dumps(generation, indent=2) + "\n")
        if folder.exists():
            old = Path(tempfile.mkdtemp(prefix=f".{folder.name}.old-", dir=folder.parent))
            os.replace(folder, old / folder.name)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


# --- helpers -------------------------------------------------------------------------------
def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing (a T5 checkpoint folder needs {CONFIG_NAME})")
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise CheckpointError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _read_weights(folder: Path, allow_bin: bool) -> dict[str, torch.Tensor]:
    if (folder / WEIGHTS_NAME).is_file():
        return _load_safetensors(folder / WEIGHTS_NAME)
    if (folder / INDEX_NAME).is_file():
        index = _read_json(folder / INDEX_NAME)
        weight_map = index.get("weight_map")
        if not isinstance(weight_map, dict) or not weight_map:
            raise CheckpointError(f"{folder / INDEX_NAME}: field 'weight_map' missing or empty")
        weights: dict[str, torch.Tensor] = {}
        for shard in sorted(set(weight_map.values())):
            shard_path = (folder / shard).resolve()
            if shard_path.parent != folder.resolve():
                raise CheckpointError(
                    f"{folder / INDEX_NAME}: shard {shard!r} is outside the folder"
                )
            weights.update(_load_safetensors(shard_path))
        return weights
    if (folder / "pytorch_model.bin").is_file():
        if not allow_bin:
            raise CheckpointError(
                f"{folder / 'pytorch_model.bin'}: pickle checkpoints are not loaded by default; convert "
                "it to safetensors (e.g. `T5ForConditionalGeneration.from_pretrained(folder)."
                "save_pretrained(out)` in a trusted environment) or pass allow_bin=True to load it "
                "with torch.load(weights_only=True)"
            )
        try:
            return torch.load(folder / "pytorch_model.bin", map_location="cpu", weights_only=True)
        except Exception as err:  # noqa: BLE001 - any unpickling failure is a bad checkpoint
            raise CheckpointError(
                f"{folder / 'pytorch_model.bin'}: cannot be loaded safely ({err})"
            ) from None
    raise CheckpointError(f"{folder}: no {WEIGHTS_NAME} or {INDEX_NAME} found")


def _load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    if not path.is_file():
        raise CheckpointError(f"{path}: missing shard")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError) as err:
        raise CheckpointError(f"{path}: corrupt or not a safetensors file ({err})") from None


def load_weights(model: torch.nn.Module, weights: dict[str, torch.Tensor], folder: Path) -> None:
    """Copy ``weights`` into ``model``, checking names, shapes and the tied/shared structure
    (HF folders and taskmix checkpoints use the same names)."""
    config: T5Config = model.config
    weights = {k: v for k, v in weights.items() if k not in _ALIASES and k not in _UNUSED}
    if config.tie_word_embeddings and "lm_head.weight" in weights:
        lm_head = weights.pop("lm_head.weight")
        shared = weights.get("shared.weight")
        if shared is not None and not torch.equal(lm_head, shared):
            raise CheckpointError(
                f"{folder}: config says tie_word_embeddings but lm_head.weight differs from shared.weight"
            )
    if (
        not config.tie_word_embeddings
        and "lm_head.weight" not in weights
        and "shared.weight" in weights
    ):
        # transformers >= 5 ties lm_head in memory and writes only shared.weight
        weights["lm_head.weight"] = weights["shared.weight"].clone()

    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{folder}: weights do not match a {config.architecture} T5 with this config.json "
            f"(missing {missing[:5]}{'...' if len(missing) > 5 else ''}, "
            f"unexpected {unexpected[:5]}{'...' if len(unexpected) > 5 else ''})"
        )
    for name, tensor in expected.items():
        if weights[name].shape != tensor.shape:
            hint = (
                " (vocabulary size differs)" if name in ("shared.weight", "lm_head.weight") else ""
            )
            raise CheckpointError(
                f"{folder}: {name} has shape {tuple(weights[name].shape)}, config.json implies "
                f"{tuple(tensor.shape)}{hint}"
            )
    with torch.no_grad():
        seen: dict[int, str] = {}
        for name, param in expected.items():
            key = param.data_ptr()
            if key in seen:  # a shared encoder/decoder parameter: both copies must agree
                if not torch.equal(weights[name], weights[seen[key]]):
                    raise CheckpointError(
                        f"{folder}: {name} differs from {seen[key]} but the config declares "
                        "taskmix_shared_encoder_decoder (they must be one parameter)"
                    )
                continue
            seen[key] = name
            param.copy_(weights[name])
