"""The run's metrics log, ``RUN_DIR/log.jsonl``: one JSON object per line."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskmix.errors import ConfigError
from taskmix.files import atomic_write_text


class JsonlLog:
    """Append-only metrics log. On resume, lines past the checkpoint's step are dropped first,
    so the log reads as one uninterrupted run. Optionally mirrored to TensorBoard."""

    def __init__(self, path: Path, resume_step: int, tensorboard: bool = False):
        self.path = path
        self.tensorboard = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "tensorboard: true needs the tensorboard package (pip install 'taskmix[tensorboard]')"
                ) from None
            self.tensorboard = SummaryWriter(
                str(path.parent / "tensorboard"), purge_step=resume_step + 1
            )
        if path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.file = open(path, "a")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.tensorboard.add_scalar(
                        f"train/{key}" if key != "average" else "eval/average", value, step
                    )
            for task, metrics in record.get("eval", {}).items():
                for metric, value in metrics.items():
                    self.tensorboard.add_scalar(f"eval/{task}/{metric}", value, step)

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
