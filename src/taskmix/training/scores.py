"""Evaluation results in the loop: the score names a best is kept for, the bests, one table.

The loop does not know how a model is scored: it calls the ``evaluate(model, vocabulary, step)``
it was given (``taskmix.evaluation.task_evaluator`` for the tasks of a config) and keeps the
best of every score, so that ``checkpoint.keep_best`` can keep each best's checkpoint.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from taskmix.data.vocabulary import Vocabulary
from taskmix.training.checkpoint import rng_state, set_rng_state
from taskmix.training.log import JsonlLog

Results = dict[str, dict[str, float]]  # task -> metric -> score
Evaluate = Callable[[torch.nn.Module, Vocabulary, int], Results]


@dataclass
class RunState:
    """What the loop carries between steps besides the model and optimizer."""

    step: int = 0
    best: dict[str, dict[str, Any]] = field(default_factory=dict)  # score -> {value, step}
    history: list[dict[str, Any]] = field(default_factory=list)  # evaluation results


def score_names(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Every score a best is kept for: ``task/metric``, ``task`` (the mean of its metrics) and
    ``average`` (the mean over tasks of those means)."""
    scores = {
        f"{task}/{metric}": value
        for task, metrics in results.items()
        for metric, value in metrics.items()
    }
    per_task = {task: float(np.mean(list(m.values()))) for task, m in results.items()}
    scores.update(per_task)
    scores["average"] = float(np.mean(list(per_task.values())))
    return scores


def format_eval_table(
    step: int, results: dict[str, dict[str, float]], scores: dict[str, float]
) -> str:
    """A compact table: one line per task with its mean score and each metric."""
    width = max(len("task"), *(len(task) for task in results))
    lines = [
        f"eval at step {step}: average {scores['average']:.1f}",
        f"  {'task':<{width}}  score  metrics",
    ]
    for task, metrics in results.items():
        values = "  ".join(f"{metric} {value:.1f}" for metric, value in metrics.items())
        lines.append(f"  {task:<{width}}  {scores[task]:5.1f}  {values}")
    return "\n".join(lines)


def evaluate_and_track(
    evaluate: Evaluate,
    model: torch.nn.Module,
    vocabulary: Vocabulary,
    state: RunState,
    log: JsonlLog,
    write: Callable[[str], Any],
) -> set[str]:
    """Score the tasks, print one table, update the bests; returns the score names that
    improved. RNG states are put back so evaluating never changes training."""
    saved = rng_state()
    model.eval()
    results = evaluate(model, vocabulary, state.step)
    set_rng_state(saved)
    if not results:
        return set()
    scores = score_names(results)
    state.history.append({"step": state.step, "results": results, "average": scores["average"]})
    log.write({"step": state.step, "eval": results, "average": scores["average"]})
    write(format_eval_table(state.step, results, scores))
    improved = set()
    for name, value in scores.items():
        best = state.best.get(name)
        if best is None or value > best["value"]:
            state.best[name] = {"value": value, "step": state.step}
            improved.add(name)
    return improved
