"""Experiments at a toy budget: a few steps of the tiny model on short inputs, one evaluation
on a few examples, so a whole grid runs in seconds."""

from __future__ import annotations

from typing import Any

import pytest

from taskmix.recipes.experiments import get_experiment
from taskmix.recipes.experiments.base import Settings, deep_merge

QUICK_BASE: dict[str, Any] = {
    "data": {"batch_size": 4, "input_length": 64, "target_length": 16},
    "eval": {"max_examples": 8, "max_decode_length": 8, "batch_size": 16},
}


def quick_settings(budget: int = 4, families: list[str] | None = None, **kwargs: Any) -> Settings:
    """Settings for a test: ``budget`` steps, one evaluation per run, tiny batches."""
    kwargs.setdefault("evals", 1)
    base = deep_merge(QUICK_BASE, kwargs.pop("base", {}))
    return Settings(budget=budget, families=families, base=base, **kwargs)


@pytest.fixture
def quick(default_tasks):
    """``quick(name, **settings) -> (experiment, settings)`` with the default tasks loaded."""

    def make(name: str, **kwargs: Any):
        return get_experiment(name), quick_settings(**kwargs)

    return make
