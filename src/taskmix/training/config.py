"""The YAML config of a training run, validated before any work starts.

Pre-training, multi-task training and fine-tuning are the same command with different configs;
``examples/`` holds one of each. Unknown keys, wrong types and missing files are errors that
name the key and what was expected; names (presets, tasks, metrics...) are checked by
``taskmix.training.plan`` before the run folder is made.
"""

from __future__ import annotations

import os
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
    # Glob patterns (fnmatch) over parameter names: the parameters this run trains; the others
    # are frozen (no gradients, no optimizer state; see training.trainable). None: all.
    trainable: list[str] | None = None
    # Adapter-only runs (training.adapting): {kind: bottleneck, dim: 8} or {kind: lora, rank: 4,
    # ...}; needs init_from. Trains only the adapter unless ``trainable`` is given. Its keys
    # are checked by ``plan_run`` (errors name model.adapter.<key>).
    adapter: dict[str, Any] | None = None

    @field_validator("trainable", mode="before")
    @classmethod
    def _one_pattern_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value

    @field_validator("trainable")
    @classmethod
    def _not_empty(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("an empty list trains nothing; leave the key out to train all")
        return value


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


class ParamGroupConfig(Strict):
    """Parameters (glob patterns over their names) trained with their own lr / weight decay."""

    params: list[str] = Field(min_length=1)
    lr: float | None = Field(None, gt=0)  # None: optimizer.lr; the schedule scales it alike
    weight_decay: float | None = Field(None, ge=0)  # None: optimizer.weight_decay

    @field_validator("params", mode="before")
    @classmethod
    def _one_pattern_is_a_list(cls, value: Any) -> Any:
        return [value] if isinstance(value, str) else value


class OptimizerConfig(Strict):
    name: Literal["adafactor", "adamw"] = "adafactor"
    lr: float = Field(0.01, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    clip_norm: float | None = Field(1.0, gt=0)
    schedule: Literal["inverse_sqrt", "linear_warmup_inverse_sqrt", "constant"] = "inverse_sqrt"
    warmup_steps: int = Field(10_000, ge=0)
    # A trainable parameter joins the first group one of whose patterns matches one of its
    # names; the others form the default group (lr, weight_decay above).
    groups: list[ParamGroupConfig] = Field(default_factory=list)
    # T5's gradual unfreezing: the blocks train top-down, one more per steps / num_layers
    # steps; embeddings, output layer and final norms throughout (training.unfreezing).
    gradual_unfreezing: bool = False


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


def env_flag(name: str, default: bool = True) -> bool:
    """An on/off environment variable: unset is ``default``, ``0`` (or empty) is off."""
    value = os.environ.get(name)
    return default if value is None else value.strip() not in ("0", "")


class CpuConfig(Strict):
    """CPU speed switches (training.cpu). Each default comes from the environment variable that
    turned it on or off before these keys existed, so old scripts keep working; the effective
    values are recorded in report.json. Not run-defining: a resume may change them."""

    # fp32 products through oneDNN (models.onednn): TASKMIX_ONEDNN
    onednn: bool = Field(default_factory=lambda: env_flag("TASKMIX_ONEDNN"))
    # glibc malloc keeps freed memory (training.allocator): TASKMIX_MALLOC_TUNING
    malloc_tuning: bool = Field(default_factory=lambda: env_flag("TASKMIX_MALLOC_TUNING"))
    # torch's allocator asks for transparent huge pages; only takes effect if set before torch
    # first allocates, which the ``taskmix`` command does: THP_MEM_ALLOC_ENABLE
    huge_pages: bool = Field(default_factory=lambda: env_flag("THP_MEM_ALLOC_ENABLE"))


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
    cpu: CpuConfig = Field(default_factory=CpuConfig)

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
