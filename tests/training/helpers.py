"""A tiny training config (byte vocabulary, one-layer model) shared by training and CLI tests."""

from __future__ import annotations

import copy
from typing import Any

TINY = {
    "seed": 3,
    "steps": 2,
    "vocabulary": "byte",
    "threads": 1,
    "log_every": 1,
    "model": {
        "preset": "tiny",
        "overrides": {"d_model": 32, "d_ff": 64, "num_heads": 2, "d_kv": 16, "num_layers": 1},
    },
    "data": {"mixture": "default", "input_length": 64, "target_length": 16, "batch_size": 4},
    "eval": {"tasks": ["topic"], "max_examples": 4, "max_decode_length": 4},
    "checkpoint": {"every": 2, "keep_last": 2},
}


def tiny(**changes: Any) -> dict[str, Any]:
    """``TINY`` with ``changes`` merged one level deep: ``data={"split": "x"}`` replaces only
    ``data.split``; a non-mapping value replaces the key."""
    config = copy.deepcopy(TINY)
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def train_and_evaluate(config, run_dir, **kwargs):
    """``train`` with the config's eval tasks scored, as ``taskmix train`` runs it."""
    from taskmix.evaluation import task_evaluator
    from taskmix.training.trainer import train

    kwargs.setdefault("evaluate", task_evaluator(config))
    return train(config, run_dir, **kwargs)
