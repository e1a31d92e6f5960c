"""Open a finished (or running) training run: its config, vocabulary and a checkpoint's model."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

from taskmix.data.vocabulary import Vocabulary
from taskmix.training.checkpoint import (
    CheckpointError,
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_state,
)
from taskmix.training.config import TrainConfig, parse_config
from taskmix.training.plan import load_vocabulary, run_identity


def find_checkpoint(run_dir: Path, which: str = "last", metric: str = "average") -> Path:
    """``last`` (newest valid); ``best`` (best by ``metric``, default the average score),
    ``best:TASK`` (a task's mean over its metrics) or ``best:TASK/METRIC``; or a step number
    or folder name."""
    checkpoints = Path(run_dir) / "checkpoints"
    if which == "last":
        path, problems = latest_valid_checkpoint(checkpoints)
        if path is None:
            raise CheckpointError(
                f"{run_dir}: no valid checkpoint" + (f" ({problems[0]})" if problems else "")
            )
        return path
    if which == "best" or which.startswith("best:"):
        metric = which.partition(":")[2] or metric
        path, _ = latest_valid_checkpoint(checkpoints)
        if path is None:
            raise CheckpointError(f"{run_dir}: no valid checkpoint")
        best = read_state(path).get("best", {})
        if metric not in best:
            known = ", ".join(sorted(best)) or "none: the run has not been evaluated yet"
            raise CheckpointError(
                f"{run_dir}: no best checkpoint recorded for {metric!r} (recorded: {known})"
            )
        target = checkpoints / f"step-{best[metric]['step']:08d}"
        if not target.is_dir():
            raise CheckpointError(
                f"{target}: best checkpoint for {metric!r} was pruned; list {metric!r} (or "
                "per_task) in checkpoint.keep_best"
            )
        return target
    name = which if which.startswith("step-") else f"step-{int(which):08d}"
    for path in list_checkpoints(checkpoints):
        if path.name == name:
            return path
    raise CheckpointError(f"{run_dir}: no checkpoint {name}")


def load_run_config(run_dir: Path) -> TrainConfig:
    path = Path(run_dir) / "config.yaml"
    if not path.is_file():
        raise CheckpointError(f"{run_dir}: not a taskmix run folder (no config.yaml)")
    return parse_config(yaml.safe_load(path.read_text()), str(path))


def load_run(
    run_dir: str | Path,
    checkpoint: str = "last",
    *,
    metric: str = "average",
    device: str | None = None,
) -> tuple[torch.nn.Module, Vocabulary, TrainConfig]:
    """A checkpoint's model (eval mode), the run's vocabulary and config. A vocabulary that
    changed since the checkpoint was written (same path, other tokenizer) is an error."""
    from taskmix.models import T5Config, build_model
    from taskmix.training.trainer import build_model_for

    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    vocabulary = load_vocabulary(config.vocabulary)
    path = find_checkpoint(run_dir, checkpoint, metric)
    saved = read_state(path).get("model_config")
    if saved is not None:  # the exact shape, also of a run whose shape came from init_from
        model = build_model(T5Config.from_dict(saved))
    else:
        config_for_build = config.model_copy(
            update={"model": config.model.model_copy(update={"init_from": None})}
        )
        model = build_model_for(config_for_build, vocabulary)
    load_checkpoint(path, model, identity=run_identity(config, vocabulary))
    model.eval()
    if device:
        model.to(device)
    return model, vocabulary, config
