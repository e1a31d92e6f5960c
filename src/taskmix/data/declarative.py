"""Tasks and mixtures defined in YAML, without Python (see docs/tasks.md): the schema of one
entry and how it becomes a ``Task``.

Each task names a source, two templates (``inputs`` and ``targets``, with plain ``{field}``
placeholders only) and optional label or regression formatting; it becomes an ordinary
``Task`` whose preprocessors are a plain formatting function (via ``map_examples``) followed
by ``tokenize``. Entries are validated with pydantic (``extra="forbid"``). Reading whole task
files (with ``pretraining:`` entries and mixtures) and registering them is
``taskmix.catalog``'s job.
"""

from __future__ import annotations

import functools
import math
import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskmix.data.formatting import bin_regression, label_word, parse_regression, require
from taskmix.data.source_spec import SourceSpec, source_from_config
from taskmix.data.task import Example, Feature, Task, map_examples, tokenize, validate_name
from taskmix.data.tokenizer import SentencePieceVocabulary
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


def vocabulary_from_config(value: str | None, base_dir: Path, default: Vocabulary) -> Vocabulary:
    """``byte``, a SentencePiece ``.model`` path, or None for ``default`` (the caller's, e.g.
    the embedded default data's vocabulary, which the data layer does not know).

    One instance per distinct value, so tasks loaded separately still share equal features.
    """
    if value is None:
        return default
    if value == "byte":
        return _VOCABULARIES.setdefault("byte", ByteVocabulary())
    path = Path(value).expanduser()
    path = (path if path.is_absolute() else base_dir / path).resolve()
    key, factory = f"spm:{path}", functools.partial(SentencePieceVocabulary, str(path))
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


# --------------------------------------------------------------------------- building


def build_task(
    config: TaskConfig, base_dir: Path, *, default_vocabulary: Vocabulary, key: str = "task"
) -> Task:
    """A ``Task`` from one validated ``tasks:`` entry (raises ConfigError for missing files);
    ``default_vocabulary`` serves entries without ``vocabulary:``."""
    source = source_from_config(config.source, base_dir, key=f"{key}.source")
    if config.vocabulary not in (None, "byte"):
        spm = Path(config.vocabulary).expanduser()
        spm = spm if spm.is_absolute() else base_dir / spm
        if not spm.is_file():
            raise ConfigError(
                f"{key}.vocabulary: expected an existing SentencePiece model, {spm} not found"
            )
    vocabulary = vocabulary_from_config(config.vocabulary, base_dir, default_vocabulary)
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
