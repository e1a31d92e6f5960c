"""Callbacks at step boundaries: the seam for schedules such as gradual unfreezing.

The loop stays one readable function; what changes *during* a run (unfreeze the next layer
every k steps, change a group's ``lr_scale``, log a value) lives in a callback::

    class Unfreeze(Callback):
        def __init__(self, at): self.at, self.done = at, False
        def on_train_start(self, ctx): self.apply(ctx.model)   # also after a resume
        def on_step_start(self, ctx):
            if ctx.step == self.at: self.done = True; self.apply(ctx.model)
        ...
        def state_dict(self): return {"done": self.done}
        def load_state_dict(self, state): self.done = state["done"]

    train(config, run_dir, callbacks=[Unfreeze(at=100)])

Resuming stays exact: every checkpoint saves each callback's ``state_dict()`` (JSON values) in
``state.json`` under ``callbacks.<name>``, and a resumed run gives it back to
``load_state_dict`` before ``on_train_start``. What a callback changed outside itself (which
parameters require gradients) is not saved: ``on_train_start`` re-applies it from the state.

Hooks and ``ctx.step``, numbered as ``log.jsonl`` numbers steps:

* ``on_train_start``: once per process, after the model, optimizer and any resumed state are
  loaded; ``ctx.step`` is the first step this process will run.
* ``on_step_start``: before step ``ctx.step`` (its lr is set; nothing computed yet).
* ``on_step_end``: after step ``ctx.step``'s update and log line (``ctx.record``), before any
  evaluation and checkpoint at that step.

Under DDP every rank runs its callbacks (they must decide alike: rank 0's state is saved).
A callback may only freeze and unfreeze parameters the run trains (``model.trainable``): the
optimizer holds those from the start, and one that has no gradient yet has no state either.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from taskmix.training.config import TrainConfig


@dataclass
class StepContext:
    """What a callback sees of the loop (and may change: the model, the optimizer)."""

    step: int
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    record: dict[str, Any] = field(default_factory=dict)  # on_step_end: the step's log line
    write: Callable[[dict[str, Any]], None] = lambda record: None

    def log(self, **values: Any) -> None:
        """Write ``{"step": ctx.step, **values}`` to ``log.jsonl`` (rank 0)."""
        self.write({"step": self.step, **values})


class Callback:
    """Base class: every hook is a no-op and the state is empty. ``name`` (default: the class
    name) keys the state in checkpoints; two callbacks of a run need different names."""

    @property
    def name(self) -> str:
        return type(self).__name__

    def on_train_start(self, ctx: StepContext) -> None:
        pass

    def on_step_start(self, ctx: StepContext) -> None:
        pass

    def on_step_end(self, ctx: StepContext) -> None:
        pass

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


class Callbacks:
    """A run's callbacks, called in order; their states keyed by name."""

    def __init__(self, callbacks: Sequence[Callback] = ()):
        self.callbacks = list(callbacks)
        names = [c.name for c in self.callbacks]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"callbacks: names {twice} are used twice; give each its own name")

    def __call__(self, hook: str, ctx: StepContext) -> None:
        for callback in self.callbacks:
            getattr(callback, hook)(ctx)

    def state_dict(self) -> dict[str, dict[str, Any]]:
        return {c.name: c.state_dict() for c in self.callbacks}

    def load_state_dict(self, saved: dict[str, dict[str, Any]]) -> None:
        """Restore each callback whose name the checkpoint holds (a new one starts fresh)."""
        for callback in self.callbacks:
            if callback.name in saved:
                callback.load_state_dict(saved[callback.name])
