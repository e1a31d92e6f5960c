"""Gradual unfreezing (T5 §3.5.2), a callback: ``optimizer.gradual_unfreezing: true``.

Fine-tuning is split into as many episodes as the model has blocks (``num_layers``), of
``steps / num_layers`` steps each. In episode ``k`` (0-based) the top ``k + 1`` blocks of the
encoder and of the decoder are trainable, in parallel: the last block from the first step, the
second-to-last from the second episode, ..., every block in the last episode. T5 unfroze one
more layer every 2^18 / 12 steps of its 2^18 fine-tuning steps, starting from the last layers.

What is outside the blocks trains throughout: the shared embedding, a separate output layer
(``lm_head``) and the final layer norms of encoder and decoder, which sit on top of the last
block. The relative position bias is held by the first block of each stack (as in T5 and
Hugging Face), so it trains only in the last episode.

The episode follows from the step alone, so the callback keeps no state: a resumed run
re-applies the episode of its next step, and the log shows ``unfrozen_blocks`` whenever an
episode starts (and at the first step a process runs).
"""

from __future__ import annotations

import re

import torch
from torch import nn

from taskmix.training.callbacks import Callback, StepContext

_BLOCK = re.compile(r"(?:^|\.)block\.(\d+)\.")


def episode(step: int, steps: int, num_blocks: int) -> int:
    """The 0-based episode of 1-based ``step`` in a run of ``steps`` steps."""
    return min(num_blocks - 1, (step - 1) * num_blocks // max(steps, 1))


def block_index(name: str) -> int | None:
    """The block a parameter belongs to (``encoder.block.3.…`` -> 3), None outside blocks."""
    match = _BLOCK.search(name)
    return int(match.group(1)) if match else None


class GradualUnfreezing(Callback):
    """Unfreezes the blocks top-down over ``steps`` steps (see the module docstring). Only
    parameters the run trains are touched: those that require gradients at the start."""

    name = "gradual_unfreezing"

    def __init__(self, steps: int):
        self.steps = steps
        self._blocks: list[tuple[int, nn.Parameter]] = []
        self.num_blocks = 0
        self.current: int | None = None

    def on_train_start(self, ctx: StepContext) -> None:
        self._blocks = []
        seen: set[int] = set()
        for name, param in ctx.model.named_parameters(remove_duplicate=False):
            index = block_index(name)
            if index is not None and param.requires_grad and id(param) not in seen:
                seen.add(id(param))
                self._blocks.append((index, param))
        self.num_blocks = 1 + max((i for i, _ in self._blocks), default=0)
        self.current = None
        self._apply(ctx)

    def on_step_start(self, ctx: StepContext) -> None:
        self._apply(ctx)

    def _apply(self, ctx: StepContext) -> None:
        k = episode(ctx.step, self.steps, self.num_blocks)
        if k == self.current:
            return
        first_trainable = self.num_blocks - 1 - k
        with torch.no_grad():
            for index, param in self._blocks:
                param.requires_grad_(index >= first_trainable)
                if index < first_trainable:
                    param.grad = None
        self.current = k
        ctx.log(episode=k, unfrozen_blocks=k + 1, of_blocks=self.num_blocks)
