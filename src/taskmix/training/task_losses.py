"""The training loss per task, summed over a logging window: ``task_loss`` in ``log.jsonl``.

The mixed loss of a multi-task run hides which task learns and which does not; that is what a
multi-task user looks at first. Every target token carries its task's id
(``decoder_task_ids``, see ``data.feature_converters``) and its weighted cross-entropy
(``ModelOutput.token_losses``), so the per-task sums are one ``index_add_`` over a step's
target tokens (B x L floats), kept on the device until a log line is written: no host sync per
step. Under DDP the sums are added over ranks when the window is written, so the per-task
means cover the global batch as the logged loss does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from taskmix.training.distributed import Distributed


class TaskLosses:
    """Sums of weighted loss and of loss weight (target tokens) per task id; id 0 (padding,
    or an example of no listed task) is kept apart and never reported."""

    def __init__(self, task_names: Sequence[str], device: torch.device):
        self.names = list(task_names)
        self.loss = torch.zeros(len(self.names) + 1, dtype=torch.float64, device=device)
        self.weight = torch.zeros_like(self.loss)

    def add(
        self, task_ids: torch.Tensor, token_losses: torch.Tensor, weights: torch.Tensor
    ) -> None:
        """One micro-batch: ``task_ids``, ``token_losses`` and ``weights`` of the targets' shape."""
        ids = task_ids.reshape(-1)
        self.loss.index_add_(0, ids, token_losses.reshape(-1).to(torch.float64))
        self.weight.index_add_(0, ids, weights.reshape(-1).to(torch.float64))

    def flush(self, job: Distributed) -> dict[str, dict[str, float]]:
        """``{"task_loss": {task: mean}, "task_tokens": {task: weight}}`` of the window (every
        rank), for the tasks that had target tokens in it; then start a new window."""
        sums = job.sum_all(torch.cat([self.loss[1:], self.weight[1:]]).tolist())
        self.loss.zero_()
        self.weight.zero_()
        n = len(self.names)
        losses, weights = sums[:n], sums[n:]
        seen = [i for i in range(n) if weights[i] > 0]
        return {
            "task_loss": {self.names[i]: losses[i] / weights[i] for i in seen},
            "task_tokens": {self.names[i]: _number(weights[i]) for i in seen},
        }


def _number(value: float) -> float | int:
    """Token counts (0/1 loss weights) as integers in the log."""
    return int(value) if value.is_integer() else value
