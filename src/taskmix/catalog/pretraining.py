"""``pretraining:`` entries of a task file: a cleaned corpus through an objective, in one line.

This builder stands above the data layer because it joins three packages that do not know each
other: ``cleaning`` (reading a cleaned corpus), ``objectives`` (span corruption and friends) and
``data`` (the ``Task`` it returns).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator

from taskmix.cleaning.corpus import CorpusSource, corpus_files
from taskmix.data.declarative import vocabulary_from_config
from taskmix.data.task import Task, validate_name
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError
from taskmix.objectives import make_pretraining_task


class PretrainingConfig(BaseModel):
    """A cleaned corpus as an unsupervised task, in one line:
    ``- {name: c4_mini, corpus: data/c4_clean/, objective: span_corruption}``."""

    model_config = ConfigDict(extra="forbid")

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


def build_pretraining_task(
    config: PretrainingConfig, base_dir: Path, *, default_vocabulary: Vocabulary, key: str
) -> Task:
    """A ``Task`` from one ``pretraining:`` entry: the corpus through an objective."""
    paths = [config.corpus] if isinstance(config.corpus, str) else config.corpus
    resolved = [p if Path(p).is_absolute() else base_dir / p for p in paths]
    try:
        source = CorpusSource(corpus_files(resolved))
        task = make_pretraining_task(
            config.name,
            source,
            vocabulary_from_config(config.vocabulary, base_dir, default_vocabulary),
            config.objective,
            input_length=config.input_length,
            **config.params,
        )
    except ConfigError as err:
        raise ConfigError(f"{key}: {err}") from None
    task.family = "pretraining"
    task.description = config.description or f"{config.objective} over {', '.join(paths)}"
    return task
