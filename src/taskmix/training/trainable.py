"""Which parameters a run trains, and the optimizer's parameter groups.

Adapters, LoRA, a new task head or the top layers: fine-tuning often trains a small part of a
large model. What ``model.trainable`` (or ``train(..., trainable=predicate)``) leaves out is
*frozen*: ``requires_grad=False``, so autograd computes no gradient for it (nor the products
that only it needs), the optimizer never holds it (no state), and a checkpoint need not store
it when ``model.init_from`` can rebuild it (``training.checkpoint``, ``frozen_record``).

Patterns are ``fnmatch`` globs over parameter names (``*`` also matches dots:
``decoder.*`` is every decoder parameter). A parameter shared under several names (tied
embeddings, ``shared_encoder_decoder``) matches if any of its names does. A pattern that
matches nothing is a ConfigError naming its key: a typo would otherwise silently freeze or
re-group nothing.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Sequence
from typing import Any

from torch import nn

from taskmix.errors import CheckpointError, ConfigError
from taskmix.models import T5Config
from taskmix.training.adapting import adapted_shape_model, parse_adapter
from taskmix.training.checkpoint import tensors_fingerprint
from taskmix.training.config import OptimizerConfig, TrainConfig

# ``train(..., trainable=...)``: (first name, parameter) -> whether the run trains it.
Predicate = Callable[[str, nn.Parameter], bool]


def parameter_names(model: nn.Module) -> list[tuple[list[str], nn.Parameter]]:
    """Each distinct parameter with all its names (shared parameters have several), in the
    model's order."""
    names: dict[int, list[str]] = {}
    params: dict[int, nn.Parameter] = {}
    for name, param in model.named_parameters(remove_duplicate=False):
        names.setdefault(id(param), []).append(name)
        params[id(param)] = param
    return [(names[key], params[key]) for key in params]


def _matches(names: Sequence[str], patterns: Sequence[str]) -> bool:
    return any(fnmatch.fnmatchcase(n, p) for n in names for p in patterns)


def check_patterns(
    names: Sequence[Sequence[str]], patterns: Sequence[str], key: str, what: str = "parameter"
) -> None:
    """ConfigError naming ``key`` for a pattern that matches none of ``names``."""
    for i, pattern in enumerate(patterns):
        if not any(_matches(n, [pattern]) for n in names):
            example = names[0][0] if names else "-"
            raise ConfigError(
                f"{key}[{i}]: {pattern!r} matches no {what} of this model (names look like "
                f"{example!r}; * matches any text, dots included)"
            )


def select_trainable(
    model: nn.Module, patterns: Sequence[str] | None, predicate: Predicate | None = None
) -> list[nn.Parameter]:
    """Freeze (``requires_grad=False``) what the run does not train; returns the trainable
    parameters in the model's order. ``predicate`` (the Python API) replaces ``patterns``."""
    trainable = []
    for names, param in parameter_names(model):
        if predicate is not None:
            train = bool(predicate(names[0], param))
        else:
            train = patterns is None or _matches(names, patterns)
        param.requires_grad_(train)
        if train:
            trainable.append(param)
    if not trainable:
        where = "trainable=" if predicate is not None else "model.trainable"
        raise ConfigError(f"{where}: selects no parameter; the run would train nothing")
    return trainable


def check_config_patterns(config: TrainConfig, shape: T5Config) -> None:
    """Every pattern of ``model.trainable`` and ``optimizer.groups`` matches a parameter of a
    model of ``shape`` (built on the meta device: names only, no memory, no time)."""
    trainable, optimizer = config.model.trainable, config.optimizer
    model = adapted_shape_model(shape, parse_adapter(config.model.adapter))
    everything = [names for names, _ in parameter_names(model)]
    if trainable is not None:
        check_patterns(everything, trainable, "model.trainable")
    trained = [n for n in everything if trainable is None or _matches(n, trainable)]
    for g, group in enumerate(optimizer.groups):
        check_patterns(trained, group.params, f"optimizer.groups[{g}].params", "trained parameter")


def param_groups(
    model: nn.Module, trainable: Sequence[nn.Parameter], optimizer: OptimizerConfig
) -> list[dict[str, Any]]:
    """torch parameter groups: ``optimizer.groups`` in order, then the default group. A
    parameter joins the first group that matches it. Each group keeps ``lr_scale`` (its lr
    over ``optimizer.lr``), so the schedule scales every group alike (``optim.set_lr``)."""
    chosen = {id(p) for p in trainable}
    members: list[list[nn.Parameter]] = [[] for _ in range(len(optimizer.groups) + 1)]
    for names, param in parameter_names(model):
        if id(param) not in chosen:
            continue
        index = next(
            (g for g, group in enumerate(optimizer.groups) if _matches(names, group.params)),
            len(optimizer.groups),
        )
        members[index].append(param)
    groups = []
    for g, group in enumerate(optimizer.groups):
        lr = optimizer.lr if group.lr is None else group.lr
        decay = optimizer.weight_decay if group.weight_decay is None else group.weight_decay
        if not members[g]:  # every match went to an earlier group
            raise ConfigError(
                f"optimizer.groups[{g}].params: every parameter it matches is in an earlier group"
            )
        groups.append(
            {
                "params": members[g],
                "name": f"groups[{g}]",
                "lr": lr,
                "lr_scale": lr / optimizer.lr,
                "weight_decay": decay,
            }
        )
    if members[-1]:
        groups.append(
            {
                "params": members[-1],
                "name": "default",
                "lr": optimizer.lr,
                "lr_scale": 1.0,
                "weight_decay": optimizer.weight_decay,
            }
        )
    return groups


def frozen_keys(model: nn.Module, trainable: Sequence[nn.Parameter]) -> list[str]:
    """The ``state_dict`` keys of the frozen parameters (every name of each)."""
    chosen = {id(p) for p in trainable}
    return sorted(n for names, p in parameter_names(model) if id(p) not in chosen for n in names)


def frozen_record(
    model: nn.Module, trainable: Sequence[nn.Parameter], init_from: str | None
) -> dict[str, Any] | None:
    """What ``state.json`` says about frozen parameters (None when the run trains all):
    their keys, a SHA-256 of their values, and where they come from. With ``init_from`` (the
    exact checkpoint or HF folder) checkpoints hold the trained tensors only and the frozen ones
    are rebuilt from there; without it everything is saved, as a random initialisation cannot
    be rebuilt reliably (it depends on torch's generator and the order of initialisation)."""
    keys = frozen_keys(model, trainable)
    if not keys:
        return None
    return {"keys": keys, "sha256": tensors_fingerprint(model, keys), "init_from": init_from}


def check_same_frozen(path: Any, saved: dict[str, Any] | None, keys: Sequence[str]) -> None:
    """A resumed run must freeze the same parameters (``keys``, from ``frozen_keys``) as the
    run that wrote the checkpoint (``saved``: its ``frozen`` record)."""
    was, now = set((saved or {}).get("keys", [])), set(keys)
    if was != now:
        more, fewer = sorted(now - was), sorted(was - now)
        raise CheckpointError(
            f"{path}: this run freezes other parameters than the run that wrote the checkpoint "
            f"(now also frozen: {more[:4]}{'...' if len(more) > 4 else ''}; no longer frozen: "
            f"{fewer[:4]}{'...' if len(fewer) > 4 else ''}); use the same model.trainable / "
            "trainable= or a new run folder"
        )
