"""Score a model on tasks: greedy decoding (or rank classification), postprocessing, metrics."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import islice
from typing import Any

import numpy as np
import torch

from taskmix.data.registry import TaskRegistry
from taskmix.data.task import Task
from taskmix.data.vocabulary import Vocabulary
from taskmix.metrics import compute_metrics
from taskmix.models.generate import ensemble_greedy, greedy_decode, score_options


def pad_inputs(examples: Sequence[dict[str, Any]], input_length: int) -> torch.Tensor:
    """Inputs padded to the batch's longest (cut at ``input_length``): the encoder's tokens,
    or a decoder-only model's prompt (the inputs with their EOS, as the LM feature converters
    put them before the targets; the model generates the targets after them)."""
    rows = [np.asarray(ex["inputs"][:input_length]) for ex in examples]
    width = max(len(r) for r in rows)
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, row in enumerate(rows):
        out[i, : len(row)] = row
    return torch.from_numpy(out)


def eval_examples(task: Task, split: str, max_examples: int, vocabulary: Vocabulary | None):
    """The first ``max_examples`` of a split in file order: the same examples every time."""
    if vocabulary is not None:
        task = task.with_vocabulary(vocabulary)
    return task, list(islice(task.get_dataset(split), max_examples))


def predict_texts(
    models: torch.nn.Module | Sequence[torch.nn.Module],
    examples: Sequence[dict[str, Any]],
    vocabulary: Vocabulary,
    *,
    batch_size: int = 64,
    max_decode_length: int = 32,
    input_length: int = 512,
) -> list[str]:
    """Greedy predictions as text; several models decode as a logit-averaging ensemble.
    Encoder-decoder and decoder-only (LM, prefix LM) models take the same padded inputs."""
    ensemble = list(models) if isinstance(models, Sequence) else [models]
    device = next(ensemble[0].parameters()).device
    predictions: list[str] = []
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        inputs = pad_inputs(chunk, input_length).to(device)
        if len(ensemble) == 1:
            ids = greedy_decode(ensemble[0], inputs, max_length=max_decode_length)
        else:
            ids = ensemble_greedy(ensemble, inputs, max_length=max_decode_length)
        predictions.extend(vocabulary.decode(row.tolist()) for row in ids.cpu())
    return predictions


def rank_classify(
    models: torch.nn.Module | Sequence[torch.nn.Module],
    examples: Sequence[dict[str, Any]],
    vocabulary: Vocabulary,
    labels: Sequence[str],
    *,
    input_length: int = 512,
) -> list[str]:
    """Score every label option and pick the most likely (SPEC §1's alternative to decoding).
    An ensemble averages its models' option log-likelihoods, then picks."""
    ensemble = list(models) if isinstance(models, Sequence) else [models]
    options = [vocabulary.encode(label) + [vocabulary.eos_id] for label in labels]
    inputs = [[int(t) for t in ex["inputs"][:input_length]] for ex in examples]
    scores = np.mean([score_options(m, inputs, options).scores for m in ensemble], axis=0)
    return [labels[int(i)] for i in scores.argmax(axis=-1)]


@torch.inference_mode()
def evaluate_task(
    models: torch.nn.Module | Sequence[torch.nn.Module],
    task: Task | str,
    *,
    vocabulary: Vocabulary | None = None,
    split: str = "validation",
    max_examples: int = 200,
    batch_size: int = 64,
    max_decode_length: int = 32,
    input_length: int = 512,
    rank_classification: bool = False,
    return_predictions: bool = False,
) -> dict[str, Any]:
    """Metrics of one task (×100). Targets and predictions both go through the postprocessor."""
    task = TaskRegistry.get(task) if isinstance(task, str) else task
    task, examples = eval_examples(task, split, max_examples, vocabulary)
    if not examples:
        return {}
    vocab = task.output_features["targets"].vocabulary
    labels = task.metadata.get("labels")
    if rank_classification and labels:
        texts = rank_classify(models, examples, vocab, labels, input_length=input_length)
    else:
        texts = predict_texts(
            models,
            examples,
            vocab,
            batch_size=batch_size,
            max_decode_length=max_decode_length,
            input_length=input_length,
        )
    targets = [task.postprocess(ex["targets_pretokenized"], ex) for ex in examples]
    predictions = [task.postprocess(text, ex) for text, ex in zip(texts, examples, strict=True)]
    metrics = compute_metrics(
        task.metric_names, targets, predictions, positive_label=task.metadata.get("positive_label")
    )
    if return_predictions:
        metrics["_predictions"] = [
            {
                "inputs": ex["inputs_pretokenized"],
                "target": ex["targets_pretokenized"],
                "prediction": p,
            }
            for ex, p in zip(examples, texts, strict=True)
        ]
    return metrics


def evaluate_tasks(
    models: torch.nn.Module | Sequence[torch.nn.Module],
    tasks: Sequence[str | Task],
    **kwargs: Any,
) -> dict[str, dict[str, float]]:
    """``{task: {metric: value}}`` over several tasks (those without metrics are skipped)."""
    results = {}
    for task in tasks:
        task = TaskRegistry.get(task) if isinstance(task, str) else task
        if task.metric_names:
            scores = evaluate_task(models, task, **kwargs)
            if scores:
                results[task.name] = scores
    return results
