"""Weights to start from: ``model.init_from`` names a taskmix run folder (its last checkpoint),
one of its checkpoint folders, or a Hugging Face T5 folder.

``check_init_from`` reads only what it needs (identity, config, embedding shape) so a wrong
architecture or vocabulary fails before any work; ``build_model_for`` then builds the model.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open

from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError, TaskmixError
from taskmix.models import T5Config, build_model
from taskmix.training.adapting import apply_adapter, parse_adapter
from taskmix.training.build import load_vocabulary, model_config
from taskmix.training.checkpoint import read_state
from taskmix.training.config import TrainConfig
from taskmix.training.identity import architecture_name, short, vocabulary_fingerprint
from taskmix.training.runs import (
    find_checkpoint,
    load_pretrained,
    load_run_config,
    locate_pretrained,
    resolve_pretrained,
)

__all__ = [
    "build_model_for",
    "check_init_from",
    "init_source",
    "model_shape",
]


def init_source(config: TrainConfig, resumed: dict[str, Any] | None) -> str | None:
    """The exact weights a run starts from (``runs.resolve_pretrained``), or None. A resumed
    checkpoint that holds only the trained tensors names where its frozen ones came from,
    and that wins (the run folder ``init_from`` names may have trained on since)."""
    recorded = ((resumed or {}).get("frozen") or {}).get("init_from")
    if recorded:
        return recorded
    return resolve_pretrained(config.model.init_from) if config.model.init_from else None


def build_model_for(
    config: TrainConfig, vocabulary: Vocabulary, init_from: str | None = None
) -> torch.nn.Module:
    """A fresh model of the configured preset, or the weights named by ``init_from`` (default
    ``model.init_from``), with ``model.adapter`` added after the weights are loaded."""
    init_from = init_from or config.model.init_from
    if init_from:
        model = load_pretrained(init_from)
        model.set_dropout(config.model.dropout_rate)
        if model.config.vocab_size < vocabulary.vocab_size:
            raise ConfigError(
                f"model.init_from: the checkpoint's vocabulary has {model.config.vocab_size} ids, "
                f"the configured vocabulary needs {vocabulary.vocab_size}"
            )
    else:
        model = build_model(model_config(config, vocabulary))
    apply_adapter(model, parse_adapter(config.model.adapter))
    return model


def check_init_from(config: TrainConfig, vocabulary: Vocabulary) -> None:
    """``init_from`` must hold a model of the configured architecture and vocabulary."""
    path = Path(config.model.init_from or "")
    where = f"model.init_from: {path}"
    if config.model.overrides:
        raise ConfigError(
            "model.overrides: not used with model.init_from (the model's shape comes from the "
            "checkpoint); remove them"
        )
    architecture, fingerprint, vocab_size = _pretrained_identity(path)
    if architecture != config.model.architecture:
        raise ConfigError(
            f"{where} holds a model of architecture {architecture!r}, but model.architecture is "
            f"{config.model.architecture!r}; set model.architecture: {architecture}"
        )
    mine = vocabulary_fingerprint(vocabulary)
    if fingerprint is not None and fingerprint != mine:
        raise ConfigError(
            f"{where} was trained with another vocabulary ({short(fingerprint)}) than "
            f"vocabulary: {config.vocabulary} ({short(mine)}); use the vocabulary it was trained with"
        )
    if vocab_size < vocabulary.vocab_size:
        raise ConfigError(
            f"{where}: the checkpoint's vocabulary has {vocab_size} ids, "
            f"the configured vocabulary needs {vocabulary.vocab_size}"
        )


def _pretrained_identity(path: Path) -> tuple[str, str | None, int]:
    """(architecture, vocabulary fingerprint or None if unknown, embedding rows) of what
    ``locate_pretrained`` finds, without loading weights."""
    run_dir, which = locate_pretrained(path)
    if which is None:
        try:
            hf = T5Config.from_hf_config(json.loads((path / "config.json").read_text()))
        except (TaskmixError, json.JSONDecodeError) as err:
            raise ConfigError(f"model.init_from: {path / 'config.json'}: {err}") from None
        return architecture_name(hf), None, hf.vocab_size
    try:
        run_config = load_run_config(run_dir)
        checkpoint = find_checkpoint(run_dir, which)
    except TaskmixError as err:
        raise ConfigError(f"model.init_from: {err}") from None
    if run_config.model.adapter is not None:
        raise ConfigError(
            f"model.init_from: {path} is an adapter run (model.adapter); starting a run from one "
            "is not supported: use its base (that run's model.init_from) instead"
        )
    state = read_state(checkpoint)
    fingerprint = state.get("identity", {}).get("vocabulary")
    if fingerprint is None:  # a checkpoint from before fingerprints: its config's vocabulary
        fingerprint = vocabulary_fingerprint(load_vocabulary(run_config.vocabulary))
    return run_config.model.architecture, fingerprint, _embedding_rows(checkpoint, state)


def _embedding_rows(checkpoint: Path, state: dict[str, Any]) -> int:
    if "model_config" in state:  # also where the embedding was frozen and not saved
        return int(state["model_config"]["vocab_size"])
    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        return int(f.get_slice("shared.weight").get_shape()[0])


def model_shape(config: TrainConfig, vocabulary: Vocabulary) -> T5Config:
    """The T5Config the run's model will have (of ``init_from`` when set), read without loading
    weights (``plan`` checks parameter name patterns against it)."""
    if not config.model.init_from:
        return model_config(config, vocabulary)
    path = Path(config.model.init_from)
    run_dir, which = locate_pretrained(path)
    if which is None:
        return T5Config.from_hf_config(json.loads((path / "config.json").read_text()))
    saved = read_state(find_checkpoint(run_dir, which)).get("model_config")
    if saved is not None:
        return T5Config.from_dict(saved)
    run_config = load_run_config(run_dir)
    return model_config(run_config, load_vocabulary(run_config.vocabulary))
