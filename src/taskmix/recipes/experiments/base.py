"""What an experiment is: a small declarative grid of runs, and how its results become a table.

An ``Experiment`` says which runs it needs (``runs``: each a ``RunSpec``, a normal training
config plus the runs it starts from) and how their reports become one table (``summarize``).
It never trains anything itself: ``taskmix.recipes.experiments.runner`` writes every run's
config, trains the runs in dependency order with a process pool (or prints their
``taskmix train`` commands for a cluster scheduler), and hands the finished runs' reports to
``summarize``. So every run is an ordinary run folder that ``taskmix eval`` and ``predict`` read.

Settings shared by every experiment (``Settings``) come from the command line and an optional
YAML file::

    budget: 400              # training steps of one arm (each experiment says how it splits them)
    families: [nli, dialogue]  # families or task names the experiment uses
    seed: 0
    grid: {temperature: [1, 2, 8]}   # override a grid axis (keys: the experiment's ``grid``)
    base:                    # merged into every run's training config (run keys win)
      model: {preset: tiny}
      eval: {max_examples: 50}
"""

from __future__ import annotations

import copy
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from taskmix.data.task import validate_name
from taskmix.default_data import FAMILIES, SPECS
from taskmix.errors import ConfigError
from taskmix.files import atomic_write_text
from taskmix.yamlconf import read_yaml_file, validate

DEFAULT_BASE: dict[str, Any] = {
    # Sized for a 2-core CPU; a settings file's ``base:`` changes any of it.
    "vocabulary": "default",
    "log_every": 10,
    "model": {"preset": "tiny", "version": "1.1", "dropout_rate": 0.1},
    "data": {"input_length": 128, "target_length": 32, "batch_size": 32},
    "optimizer": {"name": "adafactor", "lr": 0.01, "schedule": "constant", "warmup_steps": 0},
    "eval": {"max_examples": 50, "batch_size": 64, "max_decode_length": 32},
    "checkpoint": {"keep_last": 1, "keep_best": ["per_task"]},
}


class SettingsFile(BaseModel):
    """The optional YAML file of ``taskmix experiment NAME CONFIG``."""

    model_config = ConfigDict(extra="forbid")

    budget: int | None = Field(None, gt=0)
    families: list[str] | None = None
    seed: int = 0
    evals: int = Field(2, gt=0)  # evaluations per run (T5 reports each task's best)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    base: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Settings:
    """An experiment's settings after the command line overrode the file."""

    budget: int
    seed: int = 0
    families: list[str] | None = None
    evals: int = 2
    grid: dict[str, list[Any]] = field(default_factory=dict)
    base: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "budget": self.budget,
            "seed": self.seed,
            "families": self.families,
            "evals": self.evals,
            "grid": self.grid,
            "base": self.base,
        }


def read_settings(path: str | Path | None) -> SettingsFile:
    if path is None:
        return SettingsFile()
    file = read_yaml_file(path)
    return validate(SettingsFile, file.data or {}, str(path), file)


@dataclass
class RunSpec:
    """One run of the grid. ``config`` is a training config (a dict, as in YAML) without the
    settings' ``base``; ``init_from`` names the run (of this experiment) whose last checkpoint
    this one starts from; ``labels`` are the table's columns for this run (arm, task, ...)."""

    name: str
    config: dict[str, Any]
    init_from: str | None = None
    labels: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        try:
            validate_name(self.name, "run name")
        except ValueError as err:
            raise ConfigError(str(err)) from None

    @property
    def steps(self) -> int:
        return int(self.config["steps"])


@dataclass
class Outcome:
    """What a run left behind: ``status`` is done, failed or skipped (a run it starts from
    failed); ``report`` is its report.json; ``final_loss`` the mean training loss of its last
    logged steps."""

    name: str
    status: str
    report: dict[str, Any] = field(default_factory=dict)
    error: str | None = None
    seconds: float | None = None
    final_loss: float | None = None
    labels: dict[str, Any] = field(default_factory=dict)

    def best(self, task: str, metric: str | None = None) -> float | None:
        """The task's best score over the run's evaluations (the mean of its metrics, or one
        ``metric``), as T5 reports each task at its best checkpoint; None if not scored."""
        entry = self.report.get("best", {}).get(task if metric is None else f"{task}/{metric}")
        return None if entry is None else float(entry["value"])

    def final(self, task: str) -> float | None:
        """The task's score (mean of its metrics) at the run's last evaluation."""
        results = (self.report.get("final") or {}).get("results", {}).get(task)
        return None if not results else float(sum(results.values()) / len(results))


@dataclass
class Summary:
    """An experiment's result: one table (``columns`` and ``rows`` of values), notes printed
    under it (the step counts, the paper's finding and whether it reproduced), and extra
    JSON (e.g. a matrix)."""

    columns: list[str]
    rows: list[list[Any]]
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)


class Experiment:
    """A grid of runs and its table; subclasses set the class attributes and two methods."""

    name: ClassVar[str]
    description: ClassVar[str]  # one line, for ``taskmix experiment --help``
    grid: ClassVar[dict[str, list[Any]]] = {}  # the axes a settings file may override
    default_budget: ClassVar[int] = 300
    # families used when the settings give none (None: every family)
    default_families: ClassVar[tuple[str, ...] | None] = None

    def runs(self, ctx: Context) -> list[RunSpec]:
        raise NotImplementedError

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        raise NotImplementedError

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        """PNG files of the result (default: none beyond the table)."""
        return []


@dataclass
class Context:
    """What ``runs`` and ``summarize`` may use: the settings, the output folder and helpers for
    the default data's tasks, step counts and the experiment's own task file."""

    experiment: Experiment
    settings: Settings
    out: Path

    @property
    def budget(self) -> int:
        return self.settings.budget

    @property
    def base_config(self) -> dict[str, Any]:
        """What every run's config starts from: the defaults with the settings' ``base``."""
        return deep_merge(DEFAULT_BASE, self.settings.base)

    def axis(self, key: str) -> list[Any]:
        """A grid axis: the settings' values, else the experiment's defaults."""
        return list(self.settings.grid.get(key, self.experiment.grid[key]))

    def steps(self, fraction: float = 1.0, arm: str = "") -> int:
        """``fraction`` of the budget in whole steps; an arm left with fewer steps than the
        evaluations it needs is a ConfigError naming the arm."""
        steps = int(math.floor(self.budget * fraction))
        if steps < self.settings.evals:
            need = math.ceil(self.settings.evals / fraction)
            raise ConfigError(
                f"--budget {self.budget} is too small for {self.experiment.name}: arm "
                f"{arm or 'runs'} gets {steps} steps for {self.settings.evals} evaluations; "
                f"give at least --budget {need}"
            )
        return steps

    def train_config(
        self, steps: int, mixture: str, eval_tasks: Sequence[str], **sections: Any
    ) -> dict[str, Any]:
        """A run config: ``steps`` on ``mixture``, evaluating ``eval_tasks`` ``settings.evals``
        times; ``sections`` (e.g. ``model={...}``) are merged over it."""
        config: dict[str, Any] = {
            "seed": self.settings.seed,
            "steps": steps,
            "data": {"mixture": mixture},
            "eval": {"every": max(1, steps // self.settings.evals), "tasks": list(eval_tasks)},
            "checkpoint": {"every": steps},
        }
        if self.task_file.exists():
            config["tasks"] = [str(self.task_file)]
        return deep_merge(config, sections)

    # ------------------------------------------------------------------ the default data

    def families(self) -> list[str]:
        """The families in use: ``--families`` items that are families, and the families of
        items that are task names; else the experiment's default, else every family."""
        chosen = self.settings.families or self.experiment.default_families
        if not chosen:
            return list(FAMILIES)
        by_task = {s.name: s.family for s in SPECS}
        families = []
        for item in chosen:
            family = item if item in FAMILIES else by_task.get(item)
            if family is None:
                raise ConfigError(
                    f"--families: {item!r} is neither a family ({', '.join(FAMILIES)}) nor a "
                    "default task"
                )
            if family not in families:
                families.append(family)
        return families

    def tasks(self, family: str | None = None, in_mixture: bool = True) -> list[str]:
        """Supervised default tasks of the families in use (or of one ``family``); when the
        settings name tasks, only those of their families. ``in_mixture``: only tasks of the
        default mixture (False: only those kept out of it)."""
        named = {s.name for s in SPECS} & set(self.settings.families or ())
        narrowed = {s.family for s in SPECS if s.name in named}  # families cut down to names
        families = [family] if family else self.families()
        return [
            s.name
            for s in SPECS
            if s.family in families
            and s.in_mixture == in_mixture
            and (s.family not in narrowed or s.name in named)
        ]

    # ------------------------------------------------------------------ its own task file

    @property
    def task_file(self) -> Path:
        return self.out / "tasks.yaml"

    def write_task_file(self, content: dict[str, Any]) -> Path:
        """The experiment's own mixtures and pre-training tasks (``tasks:``, ``mixtures:``,
        ``pretraining:`` as in any task file), written once; runs name it in ``tasks:``."""
        text = json.dumps(content, indent=1) + "\n"  # JSON is YAML, and byte-stable
        if not self.task_file.exists() or self.task_file.read_text() != text:
            atomic_write_text(self.task_file, text)
        return self.task_file


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``over`` merged into a copy of ``base``: nested mappings merge, other values replace."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def mean(values: Sequence[float | None]) -> float | None:
    """The mean of the values that exist (None if none does)."""
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None
