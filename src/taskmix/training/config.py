"""The YAML config of a training run, validated before any work starts.

Pre-training, multi-task training and fine-tuning are the same command with different configs;
``examples/`` holds one of each. Unknown keys, wrong types and missing files are errors that
name the key and what was expected; names (presets, tasks, metrics...) are checked by
``taskmix.training.plan`` before the run folder is made.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskmix.errors import ConfigError
from taskmix.yamlconf import apply_assignments, read_yaml_file, validate


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ModelConfig(Strict):
    preset: str = "tiny"
    version: Literal["1.0", "1.1"] = "1.1"
    architecture: Literal[
        "encoder_decoder", "decoder_only", "prefix_lm", "shared_encoder_decoder"
    ] = "encoder_decoder"
    dropout_rate: float = Field(0.1, ge=0.0, lt=1.0)
    init_from: str | None = None  # a taskmix run folder, a checkpoint folder, or a HF T5 folder
    overrides: dict[str, int | float | str | bool] = Field(default_factory=dict)


class DataConfig(Strict):
    mixture: str = "default"  # a mixture or a single task name
    split: str = "train"
    input_length: int = Field(256, gt=0)
    target_length: int = Field(64, gt=0)
    batch_size: int = Field(32, gt=0)
    pack: bool = True
    overflow: Literal["truncate", "drop"] = "truncate"
    cap: int | None = Field(None, gt=0)
    temperature: float | None = Field(None, gt=0)


class OptimizerConfig(Strict):
    name: Literal["adafactor", "adamw"] = "adafactor"
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    clip_norm: float | None = Field(1.0, gt=0)
    schedule: Literal["inverse_sqrt", "linear_warmup_inverse_sqrt", "constant"] = "inverse_sqrt"
    warmup_steps: int = Field(10_000, ge=0)


class EvalConfig(Strict):
    every: int = Field(0, ge=0)  # 0: only at the end
    split: str = "validation"
    tasks: list[str] | None = None  # None: the tasks of the training mixture
    max_examples: int = Field(200, gt=0)
    batch_size: int = Field(64, gt=0)
    max_decode_length: int = Field(32, gt=0)
    rank_classification: bool = False  # score each label of classification tasks, no decoding


class CheckpointConfig(Strict):
    every: int = Field(500, gt=0)
    keep_last: int = Field(2, gt=0)
    # Scores whose best checkpoint is kept: "average", a task (mean of its metrics),
    # "task/metric", or "per_task" (every eval task). A checkpoint is written at every
    # evaluation that improves one of them.
    keep_best: list[str] = Field(default_factory=lambda: ["average"])

    @field_validator("keep_best", mode="before")
    @classmethod
    def _one_name_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class TrainConfig(Strict):
    seed: int = 0
    steps: int = Field(1000, gt=0)
    grad_accum: int = Field(1, gt=0)
    vocabulary: str = "default"  # default | byte | path to a .model or HF tokenizer folder
    # Task files (YAML or Python) whose tasks and mixtures this run may name, besides the
    # default ones; relative paths resolve against the config file's folder.
    tasks: list[str] = Field(default_factory=list)
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    compile: bool = False
    threads: int | None = Field(None, gt=0)
    log_every: int = Field(10, gt=0)
    tensorboard: bool = False  # also write TensorBoard events to RUN_DIR/tensorboard
    model: ModelConfig = Field(default_factory=ModelConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)
    checkpoint: CheckpointConfig = Field(default_factory=CheckpointConfig)

    @model_validator(mode="after")
    def _check_paths(self) -> TrainConfig:
        if self.model.init_from and not Path(self.model.init_from).exists():
            raise ValueError(f"model.init_from: no such file or folder {self.model.init_from!r}")
        vocab = self.vocabulary
        if vocab not in ("default", "byte") and not Path(vocab).exists():
            raise ValueError(
                f"vocabulary: no such file or folder {vocab!r} (or use 'default'/'byte')"
            )
        return self


def parse_config(data: Any, source: str = "<config>") -> TrainConfig:
    return validate(TrainConfig, data, source)


def load_config(
    path: str | Path, overrides: list[str] | None = None, task_files: Sequence[str] = ()
) -> TrainConfig:
    """Read a YAML config strictly; ``overrides`` are ``--set key.path=value`` strings and
    ``task_files`` (``--tasks``, relative to the working folder) are added to ``tasks:``."""
    file = read_yaml_file(path)
    data = file.data or {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of keys at the top level")
    data = apply_assignments(data, overrides or [])
    if isinstance(data.get("tasks"), list):  # relative to the config file, as users expect
        data["tasks"] = [_relative_to(path, item) for item in data["tasks"]]
    if task_files:
        data["tasks"] = [*data.get("tasks", []), *(str(Path(f).resolve()) for f in task_files)]
    for i, task_file in enumerate(data.get("tasks") or []):
        if isinstance(task_file, str) and not Path(task_file).is_file():
            where = file.where(("tasks", i))  # --tasks files have no line in the config
            raise ConfigError(f"{where}: tasks[{i}]: no such task file {task_file!r}")
    return validate(TrainConfig, data, str(path), file)


def _relative_to(config_path: str | Path, item: Any) -> Any:
    if not isinstance(item, str):
        return item  # validation names the key and the type
    path = Path(item).expanduser()
    return str(path if path.is_absolute() else (Path(config_path).parent / path).resolve())
