"""What a config's model and data pipeline are built from: vocabulary, model shape, converter.

``model_config`` turns ``model.preset``/``version``/``architecture``/``overrides`` into a
``T5Config`` (unknown or reserved override keys name the key); ``make_converter`` picks the
feature converter of the architecture (SPEC §2: encoder-decoder, decoder-only, prefix LM).
Weights to start from (``model.init_from``) are ``training.pretrained``'s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from taskmix.data.feature_converters import (
    DecoderOnlyFeatureConverter,
    EncDecFeatureConverter,
    FeatureConverter,
    PrefixLMFeatureConverter,
)
from taskmix.data.tokenizer import load_vocabulary as load_vocabulary_file
from taskmix.data.vocabulary import Vocabulary
from taskmix.default_data import default_vocabulary
from taskmix.errors import ConfigError
from taskmix.models import PRESET_NAMES, T5Config, preset
from taskmix.training.config import TrainConfig

# T5Config fields the trainer sets from other keys; ``model.overrides`` may not set them.
RESERVED_OVERRIDES = {
    "vocab_size": "vocabulary",
    "architecture": "model.architecture",
    "shared_encoder_decoder": "model.architecture",
    "dropout_rate": "model.dropout_rate",
}


def load_vocabulary(spec: str) -> Vocabulary:
    """``default`` (the embedded default data's), ``byte``, or a tokenizer file or folder."""
    if spec == "default":
        return default_vocabulary()
    return load_vocabulary_file(spec)


def model_config(config: TrainConfig, vocabulary: Vocabulary) -> T5Config:
    """The T5Config of a fresh model; unknown or reserved override keys name the key."""
    if config.model.preset not in PRESET_NAMES:
        raise ConfigError(
            f"model.preset: expected one of {list(PRESET_NAMES)}, got {config.model.preset!r}"
        )
    fields = {f.name for f in dataclasses.fields(T5Config)}
    for key in config.model.overrides:
        if key in RESERVED_OVERRIDES:
            raise ConfigError(
                f"model.overrides.{key}: set by {RESERVED_OVERRIDES[key]}, not by overrides"
            )
        if key not in fields:
            allowed = sorted(fields - set(RESERVED_OVERRIDES))
            raise ConfigError(
                f"model.overrides.{key}: unknown T5Config field; expected one of {allowed}"
            )
    architecture = config.model.architecture
    try:
        return preset(
            config.model.preset,
            version=config.model.version,
            vocab_size=_round_up(vocabulary.vocab_size, 128),
            dropout_rate=config.model.dropout_rate,
            architecture="encoder_decoder"
            if architecture == "shared_encoder_decoder"
            else architecture,
            shared_encoder_decoder=architecture == "shared_encoder_decoder",
            **config.model.overrides,
        )
    except ConfigError as err:
        raise ConfigError(f"model.overrides: {err}") from None


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def make_converter(
    config: TrainConfig, architecture: str, task_names: Sequence[str] | None = None
) -> FeatureConverter:
    """The architecture's converter; with ``task_names`` its batches carry per-token task ids."""
    data = config.data
    options = {"pack": data.pack, "overflow": data.overflow, "task_names": task_names}
    if architecture in ("encoder_decoder", "shared_encoder_decoder"):
        return EncDecFeatureConverter(data.input_length, data.target_length, **options)
    length = data.input_length + data.target_length
    if architecture == "prefix_lm":
        return PrefixLMFeatureConverter(length, **options)
    return DecoderOnlyFeatureConverter(length, **options)
