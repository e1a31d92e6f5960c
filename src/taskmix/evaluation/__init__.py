"""Scoring models on tasks: greedy decoding or rank classification, postprocessors, metrics."""

from taskmix.evaluation.evaluator import evaluate_task, evaluate_tasks, predict_texts
from taskmix.evaluation.runs import task_evaluator

__all__ = ["evaluate_task", "evaluate_tasks", "predict_texts", "task_evaluator"]
