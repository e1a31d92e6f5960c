"""T5 model configuration, the paper's size presets and the mapping to Hugging Face config keys.

One dataclass describes every variant (SPEC §2): encoder-decoder, encoder-decoder with shared
encoder/decoder parameters, decoder-only LM and prefix LM; T5.1.0 (tied embeddings, ReLU) or
T5.1.1 (untied, gated-GELU).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from taskmix.errors import ConfigError

ARCHITECTURES = ("encoder_decoder", "decoder_only", "prefix_lm")
FEED_FORWARD_PROJS = ("relu", "gated-gelu")
DEFAULT_VOCAB_SIZE = (
    32128  # 32k SentencePiece + 100 sentinels, padded to a multiple of 128 (as HF's t5)
)


@dataclass
class T5Config:
    """Hyper-parameters of a T5-family model. ``tie_word_embeddings`` selects T5.1.0 behaviour:
    the output projection is the input embedding and the decoder output is scaled by d_model**-0.5."""

    vocab_size: int = DEFAULT_VOCAB_SIZE
    d_model: int = 512
    d_kv: int = 64
    d_ff: int = 2048
    num_layers: int = 6
    num_decoder_layers: int | None = None  # None: same as num_layers
    num_heads: int = 8
    relative_attention_num_buckets: int = 32
    relative_attention_max_distance: int = 128
    dropout_rate: float = 0.1
    layer_norm_epsilon: float = 1e-6
    feed_forward_proj: str = "relu"
    tie_word_embeddings: bool = True
    shared_encoder_decoder: bool = False
    architecture: str = "encoder_decoder"
    pad_token_id: int = 0
    eos_token_id: int = 1
    decoder_start_token_id: int = 0

    def __post_init__(self) -> None:
        if self.num_decoder_layers is None:
            self.num_decoder_layers = self.num_layers
        self.validate()

    def validate(self) -> None:
        """Raise ConfigError naming the key and what was expected."""
        for key in ("vocab_size", "d_model", "d_kv", "d_ff", "num_layers", "num_heads"):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ConfigError(f"T5Config.{key}: expected a positive integer, got {value!r}")
        if not isinstance(self.num_decoder_layers, int) or self.num_decoder_layers < 0:
            raise ConfigError(
                f"T5Config.num_decoder_layers: expected a non-negative integer, got {self.num_decoder_layers!r}"
            )
        if self.feed_forward_proj not in FEED_FORWARD_PROJS:
            raise ConfigError(
                f"T5Config.feed_forward_proj: expected one of {FEED_FORWARD_PROJS}, got {self.feed_forward_proj!r}"
            )
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"T5Config.architecture: expected one of {ARCHITECTURES}, got {self.architecture!r}"
            )
        if not 0.0 <= float(self.dropout_rate) < 1.0:
            raise ConfigError(
                f"T5Config.dropout_rate: expected 0 <= p < 1, got {self.dropout_rate!r}"
            )
        if self.shared_encoder_decoder:
            if self.architecture != "encoder_decoder":
                raise ConfigError(
                    "T5Config.shared_encoder_decoder: only meaningful with architecture 'encoder_decoder', "
                    f"got architecture {self.architecture!r}"
                )
            if self.num_decoder_layers != self.num_layers:
                raise ConfigError(
                    "T5Config.num_decoder_layers: a shared encoder/decoder needs num_decoder_layers == "
                    f"num_layers ({self.num_layers}), got {self.num_decoder_layers}"
                )

    @property
    def is_gated(self) -> bool:
        return self.feed_forward_proj == "gated-gelu"

    def replace(self, **changes: Any) -> T5Config:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> T5Config:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(
                f"T5Config: unknown keys {unknown}; expected a subset of {sorted(known)}"
            )
        return cls(**data)

    # --- Hugging Face interop -------------------------------------------------------------
    def to_hf_config(self) -> dict[str, Any]:
        """A transformers ``T5Config`` JSON dict. Architectures HF lacks are marked with
        ``taskmix_*`` keys (HF keeps unknown keys) so :func:`from_hf_config` restores them."""
        hf = {
            "architectures": ["T5ForConditionalGeneration"],
            "model_type": "t5",
            "vocab_size": self.vocab_size,
            "d_model": self.d_model,
            "d_kv": self.d_kv,
            "d_ff": self.d_ff,
            "num_layers": self.num_layers,
            "num_decoder_layers": self.num_decoder_layers,
            "num_heads": self.num_heads,
            "relative_attention_num_buckets": self.relative_attention_num_buckets,
            "relative_attention_max_distance": self.relative_attention_max_distance,
            "dropout_rate": self.dropout_rate,
            "layer_norm_epsilon": self.layer_norm_epsilon,
            "feed_forward_proj": self.feed_forward_proj,
            "tie_word_embeddings": self.tie_word_embeddings,
            # transformers >= 5 always ties lm_head in memory and keys the d_model**-0.5 output
            # scaling on this flag; an untied lm_head.weight in the file is kept untied.
            "scale_decoder_outputs": self.tie_word_embeddings,
            "is_encoder_decoder": self.architecture == "encoder_decoder",
            "pad_token_id": self.pad_token_id,
            "eos_token_id": self.eos_token_id,
            "decoder_start_token_id": self.decoder_start_token_id,
            "initializer_factor": 1.0,
            "use_cache": True,
        }
        if self.architecture != "encoder_decoder":
            hf["architectures"] = ["TaskmixT5" + _camel(self.architecture)]
            hf["taskmix_architecture"] = self.architecture
        if self.shared_encoder_decoder:
            hf["taskmix_shared_encoder_decoder"] = True
        return hf

    @classmethod
    def from_hf_config(cls, hf: dict[str, Any], *, source: str = "config.json") -> T5Config:
        """Build from a transformers ``T5Config`` JSON dict; other model types raise ConfigError."""
        model_type = hf.get("model_type")
        if model_type not in ("t5", None) or (model_type is None and "d_kv" not in hf):
            raise ConfigError(
                f"{source}: model_type {model_type!r} is not a T5 checkpoint (expected model_type 't5')"
            )
        archs = hf.get("architectures") or []
        bad = [a for a in archs if not (a.startswith("T5") or a.startswith("TaskmixT5"))]
        if bad:
            raise ConfigError(f"{source}: architectures {bad} are not T5 architectures")
        proj = hf.get("feed_forward_proj", "relu")
        if proj == "gated-gelu_new":  # spelled this way by some exports
            proj = "gated-gelu"
        if proj not in FEED_FORWARD_PROJS:
            raise ConfigError(
                f"{source}: feed_forward_proj {proj!r} is not supported (expected one of {FEED_FORWARD_PROJS})"
            )
        # transformers >= 5 writes tie_word_embeddings=true always and keeps the real choice in
        # scale_decoder_outputs; older versions only write tie_word_embeddings.
        tied = hf.get("scale_decoder_outputs", hf.get("tie_word_embeddings", True))
        try:
            return cls(
                vocab_size=int(hf["vocab_size"]),
                d_model=int(hf["d_model"]),
                d_kv=int(hf["d_kv"]),
                d_ff=int(hf["d_ff"]),
                num_layers=int(hf["num_layers"]),
                num_decoder_layers=hf.get("num_decoder_layers"),
                num_heads=int(hf["num_heads"]),
                relative_attention_num_buckets=int(hf.get("relative_attention_num_buckets", 32)),
                relative_attention_max_distance=int(hf.get("relative_attention_max_distance", 128)),
                dropout_rate=float(hf.get("dropout_rate", 0.1)),
                layer_norm_epsilon=float(hf.get("layer_norm_epsilon", 1e-6)),
                feed_forward_proj=proj,
                tie_word_embeddings=bool(tied),
                shared_encoder_decoder=bool(hf.get("taskmix_shared_encoder_decoder", False)),
                architecture=hf.get("taskmix_architecture", "encoder_decoder"),
                pad_token_id=int(hf.get("pad_token_id", 0) or 0),
                eos_token_id=_first_int(hf.get("eos_token_id", 1)),
                decoder_start_token_id=int(hf.get("decoder_start_token_id", 0) or 0),
            )
        except KeyError as err:
            raise ConfigError(f"{source}: missing required T5 key {err.args[0]!r}") from None
        except (TypeError, ValueError) as err:
            raise ConfigError(f"{source}: bad value in T5 config: {err}") from None


def _camel(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _first_int(value: Any) -> int:
    if isinstance(value, list):
        value = value[0]
    return int(value)


# --- presets -------------------------------------------------------------------------------
# (layers per stack, d_model, d_ff, heads, d_kv). v1.0 sizes are the paper's (SPEC §2);
# v1.1 sizes are the published T5.1.1 checkpoints (small/base/large/xl/xxl), whose shapes differ.
_V10 = {
    "tiny": (2, 128, 512, 4, 32),
    "mini": (4, 256, 1024, 4, 64),
    "small": (6, 512, 2048, 8, 64),
    "base": (12, 768, 3072, 12, 64),
    "large": (24, 1024, 4096, 16, 64),
    "3B": (24, 1024, 16384, 32, 128),
    "11B": (24, 1024, 65536, 128, 128),
}
_V11 = {
    "tiny": (2, 128, 512, 4, 32),
    "mini": (4, 256, 1024, 4, 64),
    "small": (8, 512, 1024, 6, 64),
    "base": (12, 768, 2048, 12, 64),
    "large": (24, 1024, 2816, 16, 64),
    "3B": (24, 2048, 5120, 32, 64),
    "11B": (24, 4096, 10240, 64, 64),
}
PRESET_NAMES = tuple(_V10)


def preset(
    name: str,
    *,
    version: str = "1.0",
    vocab_size: int = DEFAULT_VOCAB_SIZE,
    architecture: str = "encoder_decoder",
    **overrides: Any,
) -> T5Config:
    """A named size (``tiny``, ``mini``, ``small``, ``base``, ``large``, ``3B``, ``11B``) in the
    T5.1.0 (tied, ReLU) or T5.1.1 (untied, gated-GELU) flavour; ``overrides`` replace any field."""
    tables = {"1.0": _V10, "1.1": _V11}
    if version not in tables:
        raise ConfigError(f"preset version: expected '1.0' or '1.1', got {version!r}")
    if name not in tables[version]:
        raise ConfigError(f"preset name: expected one of {list(PRESET_NAMES)}, got {name!r}")
    layers, d_model, d_ff, heads, d_kv = tables[version][name]
    fields = dict(
        vocab_size=vocab_size,
        d_model=d_model,
        d_kv=d_kv,
        d_ff=d_ff,
        num_layers=layers,
        num_decoder_layers=layers,
        num_heads=heads,
        feed_forward_proj="relu" if version == "1.0" else "gated-gelu",
        tie_word_embeddings=version == "1.0",
        architecture=architecture,
    )
    fields.update(overrides)
    return T5Config(**fields)


def dataclass_from_dict(cls: type, data: dict[str, Any], key: str) -> Any:
    """``cls(**data)`` for a config dataclass with a ``validate()``; an unknown key is a
    ConfigError naming ``key.<name>`` and the known keys."""
    known = set(cls.__dataclass_fields__)
    unknown = sorted(set(data) - known)
    if unknown:
        raise ConfigError(f"{key}.{unknown[0]}: unknown key (known: {sorted(known)})")
    config = cls(**data)
    config.validate()
    return config
