"""taskmix.models: the T5 family (SPEC §2), Hugging Face checkpoint interop and greedy decoding."""

from __future__ import annotations

from taskmix.models.config import PRESET_NAMES, T5Config, preset
from taskmix.models.decoder_only import DecoderOnlyLM
from taskmix.models.t5 import ModelOutput, T5Model


def build_model(config: T5Config) -> T5Model | DecoderOnlyLM:
    """The model class for ``config.architecture`` (randomly initialised)."""
    if config.architecture == "encoder_decoder":
        return T5Model(config)
    return DecoderOnlyLM(config)


__all__ = [
    "PRESET_NAMES",
    "DecoderOnlyLM",
    "ModelOutput",
    "T5Config",
    "T5Model",
    "build_model",
    "preset",
]
