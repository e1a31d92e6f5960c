"""A run's identity: its architecture and a fingerprint of its vocabulary.

Stored in every checkpoint, so that resuming, fine-tuning from or evaluating a checkpoint with
another vocabulary of the same size is refused instead of silently producing garbage.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from taskmix.data.tokenizer import HFTokenizerVocabulary, SentencePieceVocabulary
from taskmix.data.vocabulary import ByteVocabulary, LazyVocabulary, Vocabulary
from taskmix.errors import CheckpointError
from taskmix.training.config import TrainConfig


def vocabulary_fingerprint(vocabulary: Vocabulary) -> str:
    """Names a vocabulary by content: the SHA-256 of a SentencePiece model (or of a HF
    tokenizer's piece table), or name and size for the byte vocabulary."""
    inner = vocabulary.inner if isinstance(vocabulary, LazyVocabulary) else vocabulary
    size = vocabulary.vocab_size
    if isinstance(inner, SentencePieceVocabulary):
        return f"sentencepiece:{size}:sha256={hashlib.sha256(inner.model_proto).hexdigest()}"
    if isinstance(inner, HFTokenizerVocabulary):
        table = json.dumps(sorted(inner.tokenizer.get_vocab().items()))
        return f"hf:{size}:sha256={hashlib.sha256(table.encode()).hexdigest()}"
    if isinstance(inner, ByteVocabulary):
        return f"byte:{size}"
    return f"{type(inner).__name__}:{size}"


def run_identity(config: TrainConfig, vocabulary: Vocabulary) -> dict[str, str]:
    return {
        "architecture": config.model.architecture,
        "vocabulary": vocabulary_fingerprint(vocabulary),
    }


def short(fingerprint: str) -> str:
    """A fingerprint for messages: kind, size and the first hex digits."""
    head, sep, digest = fingerprint.partition(":sha256=")
    return f"{head}:sha256 {digest[:12]}…" if sep else fingerprint


def architecture_name(model_config: Any) -> str:
    """A T5Config's architecture in the config's terms (``shared_encoder_decoder`` included)."""
    if model_config.shared_encoder_decoder:
        return "shared_encoder_decoder"
    return model_config.architecture


def check_identity(path: Path, saved: dict[str, str] | None, current: dict[str, str]) -> None:
    """Refuse a checkpoint of another architecture or vocabulary (same size is not enough)."""
    for key, value in current.items():
        was = (saved or {}).get(key)
        if was is not None and was != value:
            if key == "vocabulary":
                raise CheckpointError(
                    f"{path}: written with another vocabulary ({short(was)}) than this run's "
                    f"({short(value)}); did the tokenizer file change? Use the one it was trained with"
                )
            raise CheckpointError(f"{path}: saved with {key} {was!r}, this run has {value!r}")
