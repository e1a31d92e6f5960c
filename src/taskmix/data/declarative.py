"""Tasks and mixtures defined in YAML, without Python (see docs/tasks.md).

A YAML file holds ``tasks:`` and/or ``mixtures:``. Each task names a source, two templates
(``inputs`` and ``targets``, with plain ``{field}`` placeholders only) and optional label or
regression formatting; it becomes an ordinary ``Task`` whose preprocessors are a plain
formatting function (via ``map_examples``) followed by ``tokenize``. The file is validated with
pydantic (``extra="forbid"``); every problem is a ``ConfigError`` naming the file, the key path
(``tasks[2].source.splits``) and what was expected. Nothing is registered unless the whole
file is valid.
"""

from __future__ import annotations

import functools
import math
import string
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from taskmix.data.formatting import bin_regression, label_word, parse_regression, require
from taskmix.data.registry import MixtureRegistry, Registry, TaskRegistry
from taskmix.data.sources import SourceSpec, source_from_config
from taskmix.data.task import Example, Feature, Task, map_examples, tokenize, validate_name
from taskmix.data.vocabulary import ByteVocabulary, LazyVocabulary, Vocabulary
from taskmix.errors import ConfigError, RecordError

# --------------------------------------------------------------------------- templates

_FORBIDDEN_IN_NAME = set(".[]!:{} \t\n")


@dataclass(frozen=True)
class Template:
    """A text with plain ``{field}`` placeholders (``{{``/``}}`` are literal braces).

    Rendering concatenates literals and field values itself: no ``str.format``, so a template
    can never reach attributes, items, conversions or format specs.
    """

    text: str
    parts: tuple[tuple[str, str | None], ...]

    @classmethod
    def parse(cls, text: str) -> Template:
        try:
            pieces = list(string.Formatter().parse(text))
        except ValueError as err:
            raise ValueError(
                f"malformed template {text!r}: {err} (write {{{{ for a literal brace)"
            ) from None
        parts: list[tuple[str, str | None]] = []
        for literal, name, spec, conversion in pieces:
            unsafe = not name or _FORBIDDEN_IN_NAME & set(name) or spec or conversion
            if name is not None and unsafe:
                suffix = (f"!{conversion}" if conversion else "") + (f":{spec}" if spec else "")
                shown = "{" + name + suffix + "}"
                raise ValueError(
                    f"unsafe placeholder {shown} in template {text!r}: only plain {{field}} "
                    "names are allowed (no '.', '[]', '!conversion', ':format' or spaces)"
                )
            parts.append((literal, name))
        return cls(text, tuple(parts))

    @property
    def fields(self) -> list[str]:
        return [name for _, name in self.parts if name is not None]

    def render(self, record: Mapping[str, Any]) -> str:
        out: list[str] = []
        for literal, name in self.parts:
            out.append(literal)
            if name is not None:
                out.append(_field_text(record, name))
        return "".join(out)


def _field_text(record: Mapping[str, Any], name: str) -> str:
    value = require(record, name)
    if isinstance(value, str):
        return value
    if isinstance(value, (bool, int, float)):
        return str(value)
    raise RecordError(
        f"expected text or a number to fill the template, got {type(value).__name__}",
        where=record.get("_where"),
        field=name,
    )


# --------------------------------------------------------------------------- formatting


@dataclass(frozen=True)
class LabelMap:
    field: str
    words: tuple[str, ...]


@dataclass(frozen=True)
class RegressionBins:
    field: str
    step: float


@dataclass(frozen=True)
class TemplateFormatter:
    """The one-example function of a YAML task: labels -> words, scores -> bins, templates.

    A picklable object rather than a closure, so data-loader workers can receive the task.
    """

    inputs: Template
    targets: Template
    labels: LabelMap | None = None
    regression: RegressionBins | None = None
    __name__ = "render_templates"  # map_examples names the preprocessor after this

    def __call__(self, record: Example) -> Example:
        values = dict(record)
        where = record.get("_where")
        if self.labels is not None:
            values[self.labels.field] = label_word(values, self.labels.field, self.labels.words)
        if self.regression is not None:
            field = self.regression.field
            raw = require(values, field)
            try:
                score = float(raw)
            except (TypeError, ValueError):
                score = math.nan
            if isinstance(raw, bool) or not math.isfinite(score):
                raise RecordError(
                    f"expected a finite number, got {raw!r}", where=where, field=field
                )
            values[field] = bin_regression(score, self.regression.step)
        out: Example = {}
        for key, template in (("inputs", self.inputs), ("targets", self.targets)):
            text = template.render(values)
            if not text.strip():
                raise RecordError("empty", where=where, field=_blank_field(template, values, key))
            out[key] = text
        if where is not None:
            out["_where"] = where
        return out


def _blank_field(template: Template, values: Example, key: str) -> str:
    """The record field that made ``key`` empty (the first blank one), so the error names
    what to fix in the data; ``key`` itself only if the template uses no field."""
    for name in template.fields:
        if not _field_text(values, name).strip():
            return name
    return key


def label_postprocessor(prediction: str, example: Example) -> str:
    """A predicted label word, stripped (a word that is no label is scored wrong, not fixed)."""
    return prediction.strip()


def regression_postprocessor(prediction: str, example: Example) -> float:
    """A predicted score as a float; unparsable text becomes 0.0 (T5's STS-B default)."""
    return parse_regression(prediction)


# --------------------------------------------------------------------------- vocabularies

_VOCABULARIES: dict[str, Vocabulary] = {}


def _load_sentencepiece(path: str) -> Vocabulary:
    from taskmix.data.tokenizer import SentencePieceVocabulary

    return SentencePieceVocabulary(path)


def _load_default() -> Vocabulary:
    from taskmix.data.default import default_vocabulary

    return default_vocabulary()


def vocabulary_from_config(value: str | None, base_dir: Path) -> Vocabulary:
    """``byte``, a SentencePiece ``.model`` path, or None for the project's default vocabulary.

    One instance per distinct value, so tasks loaded separately still share equal features.
    """
    if value is None:
        key, factory = "default", _load_default
    elif value == "byte":
        return _VOCABULARIES.setdefault("byte", ByteVocabulary())
    else:
        path = Path(value).expanduser()
        path = (path if path.is_absolute() else base_dir / path).resolve()
        key, factory = f"spm:{path}", functools.partial(_load_sentencepiece, str(path))
    if key not in _VOCABULARIES:
        _VOCABULARIES[key] = LazyVocabulary(factory)
    return _VOCABULARIES[key]


# --------------------------------------------------------------------------- schema


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LabelsSpec(_Spec):
    """``labels: {field: label, words: [entailment, neutral, contradiction]}``: index -> word."""

    field: str = Field(min_length=1)
    words: list[str] = Field(min_length=1)

    @field_validator("words")
    @classmethod
    def _distinct_words(cls, words: list[str]) -> list[str]:
        if len(set(words)) != len(words) or not all(w.strip() for w in words):
            raise ValueError(f"expected distinct, non-empty label words, got {words}")
        return words


class RegressionSpec(_Spec):
    """``regression: {field: score, step: 0.2}``: T5's STS-B target (nearest step, 1 decimal)."""

    field: str = Field(min_length=1)
    step: float = Field(default=0.2, gt=0, allow_inf_nan=False)


class TaskConfig(_Spec):
    """One ``tasks:`` entry."""

    name: str
    family: str = Field(default="other", min_length=1)
    source: SourceSpec
    inputs: str
    targets: str
    labels: LabelsSpec | None = None
    regression: RegressionSpec | None = None
    metrics: list[str] = Field(default_factory=list)
    on_error: Literal["raise", "skip"] = "raise"
    description: str = ""
    vocabulary: str | None = None
    shuffle_buffer_size: int = Field(default=10_000, gt=0)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_name(name, "task name")

    @field_validator("inputs", "targets")
    @classmethod
    def _safe_template(cls, text: str) -> str:
        Template.parse(text)
        return text

    @field_validator("vocabulary")
    @classmethod
    def _known_vocabulary(cls, value: str | None) -> str | None:
        if value is not None and value != "byte" and not value.endswith(".model"):
            raise ValueError(
                f"expected 'byte' or a path to a SentencePiece .model file, got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _formatting_fields_used(self) -> TaskConfig:
        used = set(Template.parse(self.inputs).fields) | set(Template.parse(self.targets).fields)
        if self.labels and self.regression and self.labels.field == self.regression.field:
            raise ValueError(
                f"field {self.labels.field!r} cannot be both 'labels' and 'regression'"
            )
        for key, spec in (("labels", self.labels), ("regression", self.regression)):
            if spec is not None and spec.field not in used:
                raise ValueError(
                    f"{key}.field {spec.field!r} is not used by the inputs or targets template"
                )
        return self


class ComponentConfig(_Spec):
    """A mixture component: a name, or ``{name: x, rate: 2.0}`` for a fixed rate."""

    name: str
    rate: float | None = Field(default=None, ge=0, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value


class MixtureConfig(_Spec):
    """One ``mixtures:`` entry; see ``taskmix.data.rates`` for the strategies."""

    name: str
    tasks: list[ComponentConfig] = Field(min_length=1)
    strategy: Literal["proportional", "temperature", "equal", "explicit"] = "proportional"
    cap: int | None = Field(default=None, gt=0)
    temperature: float = Field(default=1.0, gt=0, allow_inf_nan=False)
    scale: dict[str, float] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_name(name, "mixture name")


class PretrainingConfig(_Spec):
    """A cleaned corpus as an unsupervised task, in one line:
    ``- {name: c4_mini, corpus: data/c4_clean/, objective: span_corruption}``."""

    name: str
    corpus: str | list[str] = Field(description="cleaned JSONL/Parquet files or folders")
    objective: str = "span_corruption"
    input_length: int = Field(default=512, gt=0)
    params: dict[str, float | int | bool] = Field(default_factory=dict)
    vocabulary: str | None = None
    description: str = ""

    @field_validator("name")
    @classmethod
    def _valid_name(cls, name: str) -> str:
        return validate_name(name, "task name")


class FileConfig(_Spec):
    """A whole YAML file."""

    tasks: list[TaskConfig] = Field(default_factory=list)
    pretraining: list[PretrainingConfig] = Field(default_factory=list)
    mixtures: list[MixtureConfig] = Field(default_factory=list)


# --------------------------------------------------------------------------- error messages


def _key_path(loc: tuple, prefix: str = "") -> str:
    key = prefix
    for part in loc:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key or "(top level)"


def _model_at(root: type[BaseModel], loc: tuple) -> type[BaseModel] | None:
    """The model class that validates the value at ``loc`` (to list its allowed keys)."""
    model: type[BaseModel] | None = root
    for part in loc:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if model else None
        if field is None:
            return None
        model = _find_model(field.annotation)
    return model


def _find_model(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = _find_model(arg)
        if found is not None:
            return found
    return None


def describe_validation_error(err: ValidationError, root: type[BaseModel], prefix: str = "") -> str:
    """One line per problem: ``<key path>: <what was expected>``."""
    lines = []
    for e in err.errors():
        loc, kind, msg = tuple(e["loc"]), e["type"], e["msg"]
        if kind == "extra_forbidden":
            model = _model_at(root, loc[:-1])
            allowed = f"; expected one of: {', '.join(model.model_fields)}" if model else ""
            msg = f"unknown key{allowed}"
        elif kind == "missing":
            msg = "required key is missing"
        elif kind == "value_error":
            msg = msg.removeprefix("Value error, ")
        else:
            value = e.get("input")
            if isinstance(value, (str, int, float, bool)) or value is None:
                msg = f"{msg} (got {value!r})"
        lines.append(f"{_key_path(loc, prefix)}: {msg}")
    return "\n  ".join(lines)


class _StrictLoader(yaml.SafeLoader):
    """yaml.safe_load, except that a key given twice in one mapping is an error, not a silent overwrite."""


def _construct_mapping(loader: _StrictLoader, node: yaml.MappingNode, deep: bool = False) -> dict:
    seen: set = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def read_config(path: Path | str) -> FileConfig:
    """Parse and validate a YAML file (no sources opened, nothing registered)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise ConfigError(f"{path}: cannot read the config file: {err}") from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ConfigError(
            f"{path}: (top level): expected a mapping with 'tasks' and/or 'mixtures', "
            f"got {type(data).__name__}"
        )
    try:
        return FileConfig.model_validate(data)
    except ValidationError as err:
        raise ConfigError(
            f"{path}: invalid config:\n  {describe_validation_error(err, FileConfig)}"
        ) from None


# --------------------------------------------------------------------------- building


def build_task(config: TaskConfig, base_dir: Path, *, key: str = "task") -> Task:
    """A ``Task`` from one validated ``tasks:`` entry (raises ConfigError for missing files)."""
    source = source_from_config(config.source, base_dir, key=f"{key}.source")
    if config.vocabulary not in (None, "byte"):
        spm = Path(config.vocabulary).expanduser()
        spm = spm if spm.is_absolute() else base_dir / spm
        if not spm.is_file():
            raise ConfigError(
                f"{key}.vocabulary: expected an existing SentencePiece model, {spm} not found"
            )
    vocabulary = vocabulary_from_config(config.vocabulary, base_dir)
    formatter = TemplateFormatter(
        inputs=Template.parse(config.inputs),
        targets=Template.parse(config.targets),
        labels=LabelMap(config.labels.field, tuple(config.labels.words)) if config.labels else None,
        regression=(
            RegressionBins(config.regression.field, config.regression.step)
            if config.regression
            else None
        ),
    )
    if config.labels:
        postprocessor = label_postprocessor
    elif config.regression:
        postprocessor = regression_postprocessor
    else:
        postprocessor = None
    return Task(
        name=config.name,
        source=source,
        preprocessors=[map_examples(formatter), tokenize],
        output_features={"inputs": Feature(vocabulary), "targets": Feature(vocabulary)},
        family=config.family,
        postprocessor=postprocessor,
        metric_names=tuple(config.metrics),
        description=config.description,
        on_error=config.on_error,
        shuffle_buffer_size=config.shuffle_buffer_size,
    )


def build_pretraining_task(config: PretrainingConfig, base_dir: Path, *, key: str) -> Task:
    """A ``Task`` from one ``pretraining:`` entry: the corpus through an objective."""
    from taskmix.cleaning.corpus import CorpusSource, corpus_files
    from taskmix.objectives import make_pretraining_task

    paths = [config.corpus] if isinstance(config.corpus, str) else config.corpus
    resolved = [p if Path(p).is_absolute() else base_dir / p for p in paths]
    try:
        source = CorpusSource(corpus_files(resolved))
        task = make_pretraining_task(
            config.name,
            source,
            vocabulary_from_config(config.vocabulary, base_dir),
            config.objective,
            input_length=config.input_length,
            **config.params,
        )
    except ConfigError as err:
        raise ConfigError(f"{key}: {err}") from None
    task.family = "pretraining"
    task.description = config.description or f"{config.objective} over {', '.join(paths)}"
    return task


def _check_names(
    config: FileConfig,
    path: Path,
    task_registry: Registry,
    mixture_registry: Registry,
    overwrite: bool,
) -> None:
    """Names are unique in the file and do not clash with registered ones (unless overwriting)."""
    first: dict[str, str] = {}
    entries = [(f"tasks[{i}]", t.name, "task") for i, t in enumerate(config.tasks)]
    entries += [(f"pretraining[{i}]", t.name, "task") for i, t in enumerate(config.pretraining)]
    entries += [(f"mixtures[{i}]", m.name, "mixture") for i, m in enumerate(config.mixtures)]
    for key, name, kind in entries:
        if name in first:
            raise ConfigError(f"{path}: {key}.name: {name!r} is already defined at {first[name]}")
        first[name] = key
        same, other = (
            (task_registry, mixture_registry)
            if kind == "task"
            else (mixture_registry, task_registry)
        )
        if name in other:
            other_kind = "mixture" if kind == "task" else "task"
            raise ConfigError(
                f"{path}: {key}.name: {name!r} is already a registered {other_kind} "
                "(tasks and mixtures share one namespace)"
            )
        if name in same and not overwrite:
            raise ConfigError(
                f"{path}: {key}.name: {kind} {name!r} is already registered (pass overwrite=True)"
            )


def _build_mixtures(
    config: FileConfig,
    path: Path,
    tasks: dict[str, Task],
    task_registry: Registry,
    mixture_registry: Registry,
) -> list:
    """Mixtures in dependency order; components become objects, so custom registries work."""
    from taskmix.data.mixtures import Mixture

    by_name = {m.name: (i, m) for i, m in enumerate(config.mixtures)}
    built: dict[str, Mixture] = {}
    visiting: list[str] = []

    def resolve(name: str, key: str):
        if name in tasks:
            return tasks[name]
        if name in by_name:
            return build(name)
        if name in mixture_registry:
            return mixture_registry.get(name)
        if name in task_registry:
            return task_registry.get(name)
        raise ConfigError(
            f"{path}: {key}: expected the name of a task or mixture defined in this file or "
            f"registered, got {name!r}"
        )

    def build(name: str) -> Mixture:
        if name in built:
            return built[name]
        i, spec = by_name[name]
        if name in visiting:
            cycle = " -> ".join([*visiting[visiting.index(name) :], name])
            raise ConfigError(f"{path}: mixtures[{i}].tasks: mixtures nest in a cycle: {cycle}")
        visiting.append(name)
        components = []
        for j, component in enumerate(spec.tasks):
            obj = resolve(component.name, f"mixtures[{i}].tasks[{j}].name")
            components.append(obj if component.rate is None else (obj, component.rate))
        kwargs: dict[str, Any] = {"strategy": spec.strategy, "cap": spec.cap}
        kwargs["temperature"] = spec.temperature
        if spec.scale:
            kwargs["scale"] = spec.scale
        try:
            mixture = Mixture(name, components, **kwargs)
        except (ValueError, TypeError) as err:
            raise ConfigError(f"{path}: mixtures[{i}]: {err}") from None
        visiting.pop()
        built[name] = mixture
        return mixture

    return [build(m.name) for m in config.mixtures]


def load_yaml(
    path: Path | str,
    *,
    task_registry: Registry = TaskRegistry,
    mixture_registry: Registry = MixtureRegistry,
    overwrite: bool = False,
) -> tuple[list[Task], list]:
    """Load, validate and register the tasks and mixtures of a YAML file.

    Returns ``(tasks, mixtures)``. Relative paths resolve against the file's folder. All or
    nothing: any problem raises ConfigError before anything is registered.
    """
    path = Path(path)
    config = read_config(path)
    base_dir = path.resolve().parent
    _check_names(config, path, task_registry, mixture_registry, overwrite)
    tasks: dict[str, Task] = {}
    for i, task_config in enumerate(config.tasks):
        try:
            task = build_task(task_config, base_dir, key=f"tasks[{i}]")
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        task.metadata["config_file"] = str(path.resolve())
        tasks[task.name] = task
    for i, pretraining_config in enumerate(config.pretraining):
        try:
            task = build_pretraining_task(pretraining_config, base_dir, key=f"pretraining[{i}]")
        except ConfigError as err:
            raise ConfigError(f"{path}: {err}") from None
        task.metadata["config_file"] = str(path.resolve())
        tasks[task.name] = task
    mixtures = _build_mixtures(config, path, tasks, task_registry, mixture_registry)
    for task in tasks.values():
        task_registry.add(task, overwrite=overwrite)
    for mixture in mixtures:
        mixture_registry.add(mixture, overwrite=overwrite)
    return list(tasks.values()), mixtures


__all__ = [
    "FileConfig",
    "MixtureConfig",
    "PretrainingConfig",
    "TaskConfig",
    "Template",
    "TemplateFormatter",
    "build_pretraining_task",
    "build_task",
    "describe_validation_error",
    "label_postprocessor",
    "load_yaml",
    "read_config",
    "regression_postprocessor",
    "vocabulary_from_config",
]
