"""Evaluation wired to training runs: the ``evaluate`` a run's loop calls.

The training loop only calls ``evaluate(model, vocabulary, step)``; ``task_evaluator`` is the one
that scores a config's eval tasks with its ``eval`` settings, so ``taskmix train`` is

    train(config, run_dir, evaluate=task_evaluator(config))
"""

from __future__ import annotations

import torch

from taskmix.data.vocabulary import Vocabulary
from taskmix.evaluation.evaluator import evaluate_tasks
from taskmix.training.config import TrainConfig
from taskmix.training.plan import eval_task_names
from taskmix.training.scores import Evaluate, Results


def task_evaluator(config: TrainConfig, tasks: list[str] | None = None) -> Evaluate:
    """Scores ``tasks`` (default: the config's eval tasks, as ``plan_run`` resolves them) on
    ``eval.split`` with the config's ``eval`` settings."""

    def evaluate(model: torch.nn.Module, vocabulary: Vocabulary, step: int) -> Results:
        return evaluate_tasks(
            model,
            tasks if tasks is not None else eval_task_names(config),
            vocabulary=vocabulary if config.vocabulary != "default" else None,
            split=config.eval.split,
            max_examples=config.eval.max_examples,
            batch_size=config.eval.batch_size,
            max_decode_length=config.eval.max_decode_length,
            input_length=config.data.input_length,
            rank_classification=config.eval.rank_classification,
        )

    return evaluate
