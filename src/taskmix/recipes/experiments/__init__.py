"""The experiments of T5 and ExT5 as one command each (``taskmix experiment NAME``).

Each experiment is one small module with an ``Experiment`` subclass (``base``), listed in
``EXPERIMENTS`` (importing this package does not import torch, so listing them is quick);
``runner`` plans, trains and summarizes a grid, ``results`` writes the table and plots.
"""

from __future__ import annotations

from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Experiment
from taskmix.recipes.experiments.mixing import Mixing
from taskmix.recipes.experiments.objectives import Objectives
from taskmix.recipes.experiments.pretraining_data import PretrainingData

__all__ = ["EXPERIMENTS", "get_experiment"]

EXPERIMENTS: dict[str, type[Experiment]] = {
    cls.name: cls for cls in (Mixing, Objectives, PretrainingData)
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]()
