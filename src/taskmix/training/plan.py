"""What a training config resolves to, checked in full before the run folder is made.

``TrainConfig`` (pydantic) checks keys, types and files; ``plan_run`` checks what needs the
registries, the model presets and the files behind ``model.init_from``: preset and override
names, mixture and task names, eval tasks and their metrics, ``checkpoint.keep_best`` names,
and that ``init_from`` holds a model of the configured architecture and vocabulary. A typo
therefore fails before anything is written, and rerunning with the fix just works.

It also defines a run's *identity* (architecture and vocabulary fingerprint), stored in every
checkpoint so that resuming, fine-tuning from or evaluating a checkpoint with another
vocabulary of the same size is refused instead of silently producing garbage.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from taskmix.data.mixtures import Mixture, as_mixture
from taskmix.data.vocabulary import ByteVocabulary, LazyVocabulary, Vocabulary
from taskmix.errors import ConfigError, TaskmixError
from taskmix.training.config import TrainConfig

# T5Config fields the trainer sets from other keys; ``model.overrides`` may not set them.
RESERVED_OVERRIDES = {
    "vocab_size": "vocabulary",
    "architecture": "model.architecture",
    "shared_encoder_decoder": "model.architecture",
    "dropout_rate": "model.dropout_rate",
}
PER_TASK = "per_task"  # keep_best shorthand: every eval task's own best


@dataclass
class RunPlan:
    """The checked, resolved pieces of a config that training needs."""

    vocabulary: Vocabulary
    mixture: Mixture
    eval_tasks: list[str]
    tracked: list[
        str
    ]  # score names whose best checkpoint is kept ("average", "task", "task/metric")
    identity: dict[str, str]


def plan_run(config: TrainConfig) -> RunPlan:
    """Check everything a bad config could get wrong; raise ConfigError naming the key."""
    vocabulary = _vocabulary(config)
    if config.model.init_from:
        check_init_from(config, vocabulary)
    else:
        model_config(config, vocabulary)
    mixture = _mixture(config)
    eval_tasks = _eval_tasks(config, mixture)
    tracked = resolve_keep_best(config.checkpoint.keep_best, eval_tasks)
    return RunPlan(vocabulary, mixture, eval_tasks, tracked, run_identity(config, vocabulary))


# --- vocabulary, mixture, model -------------------------------------------------------------
def load_vocabulary(spec: str) -> Vocabulary:
    if spec == "default":
        from taskmix.data.default import default_vocabulary

        return default_vocabulary()
    from taskmix.data.tokenizer import load_vocabulary as load

    return load(spec)


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


def model_config(config: TrainConfig, vocabulary: Vocabulary):
    """The T5Config of a fresh model; unknown or reserved override keys name the key."""
    from taskmix.models import PRESET_NAMES, T5Config, preset

    if config.model.preset not in PRESET_NAMES:
        raise ConfigError(
            f"model.preset: expected one of {list(PRESET_NAMES)}, got {config.model.preset!r}"
        )
    fields = {f.name for f in dataclasses.fields(T5Config)}
    for key in config.model.overrides:
        if key in RESERVED_OVERRIDES:
            raise ConfigError(
                f"model.overrides.{key}: set by {RESERVED_OVERRIDES[key]}, not by overrides"
            )
        if key not in fields:
            allowed = sorted(fields - set(RESERVED_OVERRIDES))
            raise ConfigError(
                f"model.overrides.{key}: unknown T5Config field; expected one of {allowed}"
            )
    architecture = config.model.architecture
    try:
        return preset(
            config.model.preset,
            version=config.model.version,
            vocab_size=_round_up(vocabulary.vocab_size, 128),
            dropout_rate=config.model.dropout_rate,
            architecture="encoder_decoder"
            if architecture == "shared_encoder_decoder"
            else architecture,
            shared_encoder_decoder=architecture == "shared_encoder_decoder",
            **config.model.overrides,
        )
    except ConfigError as err:
        raise ConfigError(f"model.overrides: {err}") from None


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def architecture_name(model_config: Any) -> str:
    """A T5Config's architecture in the config's terms (``shared_encoder_decoder`` included)."""
    if model_config.shared_encoder_decoder:
        return "shared_encoder_decoder"
    return model_config.architecture


# --- evaluation and keep_best ---------------------------------------------------------------
def _eval_tasks(config: TrainConfig, mixture: Mixture) -> list[str]:
    from taskmix.data.registry import TaskRegistry
    from taskmix.evaluation.metrics import METRICS

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
    from taskmix.data.registry import TaskRegistry

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


# --- identity: architecture and vocabulary --------------------------------------------------
def vocabulary_fingerprint(vocabulary: Vocabulary) -> str:
    """Names a vocabulary by content: the SHA-256 of a SentencePiece model (or of a HF
    tokenizer's piece table), or name and size for the byte vocabulary."""
    from taskmix.data.tokenizer import HFTokenizerVocabulary, SentencePieceVocabulary

    inner = vocabulary.inner if isinstance(vocabulary, LazyVocabulary) else vocabulary
    size = vocabulary.vocab_size
    if isinstance(inner, SentencePieceVocabulary):
        return f"sentencepiece:{size}:sha256={hashlib.sha256(inner.model_proto).hexdigest()}"
    if isinstance(inner, HFTokenizerVocabulary):
        table = json.dumps(sorted(inner.tokenizer.get_vocab().items()))
        return f"hf:{size}:sha256={hashlib.sha256(table.encode()).hexdigest()}"
    if isinstance(inner, ByteVocabulary):
        return f"byte:{size}"
    return f"{type(inner).__name__}:{size}"


def run_identity(config: TrainConfig, vocabulary: Vocabulary) -> dict[str, str]:
    return {
        "architecture": config.model.architecture,
        "vocabulary": vocabulary_fingerprint(vocabulary),
    }


def short(fingerprint: str) -> str:
    """A fingerprint for messages: kind, size and the first hex digits."""
    head, sep, digest = fingerprint.partition(":sha256=")
    return f"{head}:sha256 {digest[:12]}…" if sep else fingerprint


def check_init_from(config: TrainConfig, vocabulary: Vocabulary) -> None:
    """``init_from`` must hold a model of the configured architecture and vocabulary."""
    path = Path(config.model.init_from or "")
    where = f"model.init_from: {path}"
    if config.model.overrides:
        raise ConfigError(
            "model.overrides: not used with model.init_from (the model's shape comes from the "
            "checkpoint); remove them"
        )
    architecture, fingerprint, vocab_size = _pretrained_identity(path)
    if architecture != config.model.architecture:
        raise ConfigError(
            f"{where} holds a model of architecture {architecture!r}, but model.architecture is "
            f"{config.model.architecture!r}; set model.architecture: {architecture}"
        )
    mine = vocabulary_fingerprint(vocabulary)
    if fingerprint is not None and fingerprint != mine:
        raise ConfigError(
            f"{where} was trained with another vocabulary ({short(fingerprint)}) than "
            f"vocabulary: {config.vocabulary} ({short(mine)}); use the vocabulary it was trained with"
        )
    if vocab_size < vocabulary.vocab_size:
        raise ConfigError(
            f"{where}: the checkpoint's vocabulary has {vocab_size} ids, "
            f"the configured vocabulary needs {vocabulary.vocab_size}"
        )


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


def _pretrained_identity(path: Path) -> tuple[str, str | None, int]:
    """(architecture, vocabulary fingerprint or None if unknown, embedding rows) of what
    ``locate_pretrained`` finds, without loading weights."""
    from taskmix.models import T5Config
    from taskmix.training.checkpoint import read_state
    from taskmix.training.runs import find_checkpoint, load_run_config

    run_dir, which = locate_pretrained(path)
    if which is None:
        try:
            hf = T5Config.from_hf_config(json.loads((path / "config.json").read_text()))
        except (TaskmixError, json.JSONDecodeError) as err:
            raise ConfigError(f"model.init_from: {path / 'config.json'}: {err}") from None
        return architecture_name(hf), None, hf.vocab_size
    try:
        run_config = load_run_config(run_dir)
        checkpoint = find_checkpoint(run_dir, which)
    except TaskmixError as err:
        raise ConfigError(f"model.init_from: {err}") from None
    fingerprint = read_state(checkpoint).get("identity", {}).get("vocabulary")
    if fingerprint is None:  # a checkpoint from before fingerprints: its config's vocabulary
        fingerprint = vocabulary_fingerprint(load_vocabulary(run_config.vocabulary))
    return run_config.model.architecture, fingerprint, _embedding_rows(checkpoint)


def _embedding_rows(checkpoint: Path) -> int:
    from safetensors import safe_open

    with safe_open(str(checkpoint / "model.safetensors"), "pt") as f:
        return int(f.get_slice("shared.weight").get_shape()[0])
