"""The experiments of T5 and ExT5 as one command each (``taskmix experiment NAME``).

Each experiment is one small module with an ``Experiment`` subclass (``base``), listed in
``EXPERIMENTS`` (importing this package does not import torch, so listing them is quick);
``runner`` plans, trains and summarizes a grid, ``results`` writes the table and plots.
"""

from __future__ import annotations

from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Experiment
from taskmix.recipes.experiments.finetuning_methods import FinetuningMethods
from taskmix.recipes.experiments.mixing import Mixing
from taskmix.recipes.experiments.objectives import Objectives
from taskmix.recipes.experiments.pretraining_data import PretrainingData
from taskmix.recipes.experiments.scaling import Scaling
from taskmix.recipes.experiments.selection import Selection
from taskmix.recipes.experiments.strategies import Strategies
from taskmix.recipes.experiments.transfer_matrix import TransferMatrix

__all__ = ["EXPERIMENTS", "get_experiment"]

EXPERIMENTS: dict[str, type[Experiment]] = {
    cls.name: cls
    for cls in (
        Strategies,
        Mixing,
        Objectives,
        PretrainingData,
        TransferMatrix,
        Selection,
        Scaling,
        FinetuningMethods,
    )
}


def get_experiment(name: str) -> Experiment:
    if name not in EXPERIMENTS:
        raise ConfigError(f"unknown experiment {name!r}; expected one of {', '.join(EXPERIMENTS)}")
    return EXPERIMENTS[name]()
