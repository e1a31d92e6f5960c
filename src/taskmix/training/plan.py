"""What a training config resolves to, checked in full before the run folder is made.

``TrainConfig`` (pydantic) checks keys, types and files; ``plan_run`` checks what needs the
registries, the model presets and the files behind ``model.init_from``: preset and override
names, mixture and task names, eval tasks and their metrics, ``checkpoint.keep_best`` names,
that ``init_from`` holds a model of the configured architecture and vocabulary, and that every
``model.trainable`` / ``optimizer.groups`` pattern matches a parameter of the model. A typo
therefore fails before anything is written, and rerunning with the fix just works.

The tasks a config can name are the default ones plus its ``tasks:`` files
(``taskmix.catalog``), loaded here first.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskmix.catalog import TaskFile, load_task_files
from taskmix.data.mixtures import Mixture, as_mixture
from taskmix.data.registry import TaskRegistry
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError, TaskmixError
from taskmix.metrics import METRICS
from taskmix.training.adapting import check_adapter
from taskmix.training.build import load_vocabulary, model_config
from taskmix.training.config import TrainConfig
from taskmix.training.identity import run_identity
from taskmix.training.pretrained import check_init_from, model_shape
from taskmix.training.trainable import check_config_patterns

PER_TASK = "per_task"  # keep_best shorthand: every eval task's own best


@dataclass
class RunPlan:
    """The checked, resolved pieces of a config that training needs."""

    vocabulary: Vocabulary
    mixture: Mixture
    eval_tasks: list[str]
    tracked: list[str]  # score names whose best checkpoint is kept ("average", "task", ...)
    identity: dict[str, str]
    task_files: list[TaskFile]  # the config's ``tasks:`` files, as loaded


def plan_run(config: TrainConfig) -> RunPlan:
    """Check everything a bad config could get wrong; raise ConfigError naming the key."""
    task_files = load_tasks(config)
    vocabulary = _vocabulary(config)
    if config.model.init_from:
        check_init_from(config, vocabulary)
    else:
        model_config(config, vocabulary)
    if config.model.adapter is not None:
        check_adapter(config.model.adapter, config.model.init_from, model_shape(config, vocabulary))
    if config.model.trainable is not None or config.optimizer.groups:
        check_config_patterns(config, model_shape(config, vocabulary))
    mixture = _mixture(config)
    eval_tasks = _eval_tasks(config, mixture)
    tracked = resolve_keep_best(config.checkpoint.keep_best, eval_tasks)
    identity = run_identity(config, vocabulary)
    return RunPlan(vocabulary, mixture, eval_tasks, tracked, identity, task_files)


def eval_task_names(config: TrainConfig) -> list[str]:
    """The tasks a run evaluates: ``eval.tasks``, or the mixture's tasks that have metrics."""
    load_tasks(config)
    return _eval_tasks(config, resolve_mixture(config))


def load_tasks(config: TrainConfig) -> list[TaskFile]:
    """Register the default tasks and the config's ``tasks:`` files (idempotent)."""
    return load_task_files(config.tasks)


# --- vocabulary, mixture ---------------------------------------------------------------------
def _vocabulary(config: TrainConfig) -> Vocabulary:
    try:
        vocabulary = load_vocabulary(config.vocabulary)
        vocabulary.vocab_size  # noqa: B018 - a lazy vocabulary loads here, errors included
    except TaskmixError as err:
        raise ConfigError(f"vocabulary: {err}") from None
    return vocabulary


def resolve_mixture(config: TrainConfig) -> Mixture:
    mixture = as_mixture(config.data.mixture)
    if config.data.cap is None and config.data.temperature is None:
        return mixture
    return mixture.with_rates(cap=config.data.cap, temperature=config.data.temperature)


def _mixture(config: TrainConfig) -> Mixture:
    try:
        mixture = resolve_mixture(config)
    except (TaskmixError, KeyError, ValueError) as err:
        raise ConfigError(f"data.mixture: {err}") from None
    try:
        mixture.rates(config.data.split)
    except (TaskmixError, KeyError, ValueError) as err:
        raise ConfigError(f"data.split / data.mixture: {err}") from None
    return mixture


# --- evaluation and keep_best ---------------------------------------------------------------
def _eval_tasks(config: TrainConfig, mixture: Mixture) -> list[str]:
    if config.eval.tasks is None:
        tasks = [t for t in mixture.tasks if t.metric_names]
    else:
        tasks = []
        for name in config.eval.tasks:
            try:
                task = TaskRegistry.get(name)
            except KeyError as err:
                raise ConfigError(f"eval.tasks: {err}") from None
            if not task.metric_names:
                raise ConfigError(f"eval.tasks: task {name!r} has no metrics to evaluate")
            tasks.append(task)
    for task in tasks:
        unknown = [m for m in task.metric_names if m not in METRICS]
        if unknown:
            raise ConfigError(f"eval.tasks: task {task.name!r} uses unknown metrics {unknown}")
        if config.eval.split not in task.splits:
            raise ConfigError(
                f"eval.split: task {task.name!r} has no split {config.eval.split!r} "
                f"(it has {list(task.splits)})"
            )
    return [t.name for t in tasks]


def resolve_keep_best(names: list[str], eval_tasks: list[str]) -> list[str]:
    """``keep_best`` entries as score names; ``per_task`` stands for every eval task."""
    tracked: list[str] = []
    for name in names:
        if name == PER_TASK:
            expanded = list(eval_tasks)
        else:
            task, _, metric = name.partition("/")
            known = name == "average" or (
                task in eval_tasks and (not metric or metric in TaskRegistry.get(task).metric_names)
            )
            if not known:
                example = f"{eval_tasks[0]}/{TaskRegistry.get(eval_tasks[0]).metric_names[0]}"
                raise ConfigError(
                    f"checkpoint.keep_best: {name!r} is not a score of this run; expected "
                    f"'average', '{PER_TASK}', an eval task ({', '.join(eval_tasks)}) or "
                    f"task/metric (e.g. {example!r})"
                    if eval_tasks
                    else f"checkpoint.keep_best: {name!r}: this run evaluates no task"
                )
            expanded = [name]
        tracked += [n for n in expanded if n not in tracked]
    return tracked
