"""Shared tiny configs for the model tests (CPU, milliseconds per forward)."""

from __future__ import annotations

from taskmix.models import T5Config


def tiny_config(**overrides) -> T5Config:
    fields = dict(
        vocab_size=96,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=2,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        dropout_rate=0.1,
    )
    fields.update(overrides)
    return T5Config(**fields)
