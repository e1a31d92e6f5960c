"""Open a finished (or running) training run: its config, vocabulary and a checkpoint's model;
and the weights ``model.init_from`` names (a run, one of its checkpoints, or a HF T5 folder)."""

from __future__ import annotations

from pathlib import Path

import torch

from taskmix.catalog import TaskFile, load_task_files
from taskmix.catalog.records import load_run_tasks, read_manifest
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import CheckpointError, ConfigError
from taskmix.models import T5Config, build_model
from taskmix.models.hf import load_hf_checkpoint
from taskmix.training.adapting import apply_adapter, parse_adapter
from taskmix.training.build import load_vocabulary, model_config
from taskmix.training.checkpoint import (
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint,
    read_state,
)
from taskmix.training.config import TrainConfig, parse_config
from taskmix.training.identity import run_identity
from taskmix.yamlconf import read_yaml_file


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
    file = read_yaml_file(path)
    return parse_config(file.data, str(path))


def load_run(
    run_dir: str | Path,
    checkpoint: str = "last",
    *,
    metric: str = "average",
    device: str | None = None,
    accept_changed_tasks: bool = False,
) -> tuple[torch.nn.Module, Vocabulary, TrainConfig]:
    """A checkpoint's model (eval mode), the run's vocabulary and config. A vocabulary that
    changed since the checkpoint was written (same path, other tokenizer) is an error.

    The run's task files are registered too, from the run's record of them
    (``taskmix.catalog.records``): a task file or data file that changed since is an error
    unless ``accept_changed_tasks``."""
    run_dir = Path(run_dir)
    config = load_run_config(run_dir)
    load_run_task_files(run_dir, config, accept_changes=accept_changed_tasks)
    vocabulary = load_vocabulary(config.vocabulary)
    path = find_checkpoint(run_dir, checkpoint, metric)
    state = read_state(path)
    saved = state.get("model_config")
    frozen_from = (state.get("frozen") or {}).get("init_from")
    if frozen_from:  # the checkpoint holds the trained tensors; the frozen ones come from here
        model = load_pretrained(frozen_from)
        if saved is not None:
            model.set_dropout(T5Config.from_dict(saved).dropout_rate)
    elif saved is not None:  # the exact shape, also of a run whose shape came from init_from
        model = build_model(T5Config.from_dict(saved))
    else:  # a checkpoint from before model_config was saved: a run without init_from
        model = build_model(model_config(config, vocabulary))
    apply_adapter(model, parse_adapter(config.model.adapter))  # base first, then the adapter
    load_checkpoint(path, model, identity=run_identity(config, vocabulary))
    model.eval()
    if device:
        model.to(device)
    return model, vocabulary, config


def load_run_task_files(
    run_dir: Path, config: TrainConfig, *, accept_changes: bool = False
) -> list[TaskFile]:
    """Register the default tasks and the run's task files (as recorded; a run from before
    records were kept loads its config's ``tasks:`` paths)."""
    recorded = read_manifest(run_dir) is not None
    defaults_and_configured = load_task_files([] if recorded else config.tasks)
    return defaults_and_configured + load_run_tasks(run_dir, accept_changes=accept_changes)


def locate_pretrained(path: Path) -> tuple[Path, str | None]:
    """What ``model.init_from`` names: ``(run_dir, checkpoint)`` for a taskmix run folder
    (checkpoint ``"last"``) or one of its checkpoint folders, ``(path, None)`` for a Hugging
    Face T5 folder; anything else is a ConfigError."""
    if (path / "config.yaml").is_file():
        return path, "last"
    if (path / "manifest.json").is_file() and (path.parent.parent / "config.yaml").is_file():
        return path.parent.parent, path.name
    if (path / "config.json").is_file():
        return path, None
    raise ConfigError(
        f"model.init_from: {path} is neither a taskmix run or checkpoint folder (config.yaml, "
        "manifest.json) nor a Hugging Face T5 folder (config.json + model.safetensors)"
    )


def load_pretrained(path: str | Path) -> torch.nn.Module:
    """Weights to start from: a taskmix run folder (its last checkpoint), one of its checkpoint
    folders, or a HF T5 folder (``locate_pretrained``)."""
    run_dir, which = locate_pretrained(Path(path))
    if which is None:
        return load_hf_checkpoint(run_dir)
    return load_run(run_dir, which)[0]


def resolve_pretrained(path: str | Path) -> str:
    """The exact weights ``model.init_from`` names now, as an absolute path: a run folder's
    last checkpoint moves on as that run trains, the checkpoint folder it is now does not."""
    run_dir, which = locate_pretrained(Path(path))
    if which is None:
        return str(Path(path).resolve())
    return str(find_checkpoint(run_dir, which).resolve())
