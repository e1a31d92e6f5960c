"""The ``source:`` block of a YAML task: validated, then turned into one of the concrete sources."""

from __future__ import annotations

import glob
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError, field_validator, model_validator

from taskmix.data.sources import (
    CsvSource,
    HFDatasetSource,
    JsonlSource,
    ParquetSource,
    TextLineSource,
    _is_glob,
)
from taskmix.data.task import Source
from taskmix.errors import ConfigError
from taskmix.yamlconf import describe_validation_error


class SourceSpec(BaseModel):
    """The ``source:`` block of a YAML task.

    Files: ``{type: jsonl|csv|tsv|parquet|text, splits: {train: path | [paths] | glob}}``;
    ``delimiter``/``quotechar`` for csv/tsv and ``field`` for text. Datasets: ``{type: hf,
    path: save_to_disk_folder}`` or ``{type: hf, hub_id: name, config: ...}`` with an optional
    ``splits: [train, validation]``.
    """

    model_config = ConfigDict(extra="forbid")

    type: Literal["jsonl", "csv", "tsv", "parquet", "text", "hf"]
    splits: Any = None
    delimiter: str | None = None
    quotechar: str | None = '"'
    field: str = "text"
    path: str | None = None
    hub_id: str | None = None
    config: str | None = None

    @field_validator("splits")
    @classmethod
    def _check_splits(cls, value: Any) -> Any:
        if value is None:
            return value
        if isinstance(value, list):
            if not value or not all(isinstance(s, str) and s for s in value):
                raise ValueError("expected a non-empty list of split names")
            return value
        if not isinstance(value, dict) or not value:
            raise ValueError(
                "expected a mapping split -> path (or list of paths, or glob), "
                "e.g. {train: data/train.jsonl}"
            )
        for split, paths in value.items():
            items = paths if isinstance(paths, list) else [paths]
            if (
                not isinstance(split, str)
                or not items
                or not all(isinstance(p, str) and p for p in items)
            ):
                raise ValueError(
                    f"split {split!r}: expected a path, a list of paths or a glob, got {paths!r}"
                )
        return value

    @model_validator(mode="after")
    def _check_type_keys(self) -> SourceSpec:
        given = self.model_fields_set
        allowed = {
            "jsonl": {"splits"},
            "parquet": {"splits"},
            "csv": {"splits", "delimiter", "quotechar"},
            "tsv": {"splits", "delimiter", "quotechar"},
            "text": {"splits", "field"},
            "hf": {"splits", "path", "hub_id", "config"},
        }[self.type] | {"type"}
        extra = sorted(given - allowed)
        if extra:
            raise ValueError(
                f"key(s) {extra} do not apply to type {self.type!r} (allowed: {sorted(allowed)})"
            )
        if self.type == "hf":
            if (self.path is None) == (self.hub_id is None):
                raise ValueError(
                    "type 'hf' needs exactly one of 'path' (a save_to_disk folder) or 'hub_id'"
                )
            if isinstance(self.splits, dict):
                raise ValueError("for type 'hf', 'splits' is a list of split names")
        elif not isinstance(self.splits, dict):
            raise ValueError(
                f"type {self.type!r} needs 'splits': a mapping split -> path, e.g. "
                "{train: data/train.jsonl}"
            )
        if self.delimiter is not None and len(self.delimiter) != 1:
            raise ValueError(f"delimiter must be one character, got {self.delimiter!r}")
        if self.quotechar is not None and len(self.quotechar) != 1:
            raise ValueError(f"quotechar must be one character or null, got {self.quotechar!r}")
        return self


def _resolve_patterns(
    splits: dict[str, str | list[str]], base_dir: Path, key: str
) -> dict[str, list[str]]:
    """Paths relative to ``base_dir``; every path must exist and every glob match a file."""
    out: dict[str, list[str]] = {}
    for split, value in splits.items():
        out[split] = []
        for pattern in value if isinstance(value, list) else [value]:
            path = Path(os.path.expanduser(pattern))
            full = str(path if path.is_absolute() else base_dir / path)
            if _is_glob(full):
                if not glob.glob(full):
                    raise ConfigError(f"{key}.splits.{split}: no file matches {full}")
            elif not os.path.isfile(full):
                raise ConfigError(
                    f"{key}.splits.{split}: expected an existing file, {full} not found"
                )
            out[split].append(full)
    return out


def source_from_config(
    spec: Mapping[str, Any] | SourceSpec, base_dir: Path | str, *, key: str = "source"
) -> Source:
    """Build a source from a ``source:`` config block; relative paths resolve against ``base_dir``.

    Raises ConfigError naming ``key`` (and the sub-key) and what was expected.
    """
    if not isinstance(spec, SourceSpec):
        try:
            spec = SourceSpec.model_validate(spec)
        except ValidationError as err:
            raise ConfigError(describe_validation_error(err, SourceSpec, prefix=key)) from None
    base_dir = Path(base_dir)
    if spec.type == "hf":
        if spec.hub_id is not None:
            return HFDatasetSource(spec.hub_id, splits=spec.splits, config=spec.config)
        folder = Path(os.path.expanduser(spec.path))
        folder = folder if folder.is_absolute() else base_dir / folder
        if not folder.is_dir():
            raise ConfigError(
                f"{key}.path: expected a datasets save_to_disk folder, {folder} not found"
            )
        return HFDatasetSource(folder, splits=spec.splits)
    paths = _resolve_patterns(spec.splits, base_dir, key)
    if spec.type == "jsonl":
        return JsonlSource(paths)
    if spec.type == "parquet":
        return ParquetSource(paths)
    if spec.type == "text":
        return TextLineSource(paths, field=spec.field)
    delimiter = spec.delimiter or ("\t" if spec.type == "tsv" else ",")
    return CsvSource(paths, delimiter=delimiter, quotechar=spec.quotechar)
