"""T5's text-to-text formatting helpers: a prefix plus ``key: value`` fields, labels, regression."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from taskmix.errors import RecordError


def require(record: Mapping[str, Any], field: str) -> Any:
    """``record[field]``, or a RecordError naming the record's file:line and the field."""
    if field not in record or record[field] is None:
        raise RecordError("missing", where=record.get("_where"), field=field)
    return record[field]


def require_text(record: Mapping[str, Any], field: str, *, allow_empty: bool = False) -> str:
    value = require(record, field)
    if not isinstance(value, str):
        value = str(value)
    if not allow_empty and not value.strip():
        raise RecordError("empty", where=record.get("_where"), field=field)
    return value


def format_fields(prefix: str, record: Mapping[str, Any], keys: Sequence[str]) -> str:
    """T5's GLUE formatter: ``"<prefix> key1: v1 key2: v2"``."""
    parts = [prefix] if prefix else []
    for key in keys:
        parts.append(f"{key}: {require_text(record, key)}")
    return " ".join(parts)


def label_word(record: Mapping[str, Any], field: str, labels: Sequence[str]) -> str:
    """Map an integer label (or a label word already) to its word; -1 means 'no label' (test)."""
    value = require(record, field)
    if isinstance(value, str) and value in labels:
        return value
    try:
        index = int(value)
    except (TypeError, ValueError):
        raise RecordError(
            f"expected one of {list(labels)} or an index, got {value!r}",
            where=record.get("_where"),
            field=field,
        ) from None
    if index == -1:
        return "<unk>"
    if not 0 <= index < len(labels):
        raise RecordError(
            f"label index {index} out of range for {list(labels)}",
            where=record.get("_where"),
            field=field,
        )
    return labels[index]


def bin_regression(score: float, step: float = 0.2) -> str:
    """T5's STS-B target: round to the nearest ``step`` and print with one decimal.

    Computed exactly as T5 does (``tf.round(score * 5) / 5``): multiply by ``1 / step`` and
    round half to even. ``round(score / step) * step`` differs at midpoints such as 0.3,
    where ``0.3 * 5`` is exactly 1.5 (-> 2 -> 0.4) but ``0.3 / 0.2`` is 1.4999... (-> 0.2).
    """
    per_unit = 1.0 / step
    return f"{float(np.round(float(score) * per_unit)) / per_unit:.1f}"


def parse_regression(text: str, default: float = 0.0) -> float:
    """Parse a predicted score back to a float; anything unparsable becomes ``default``."""
    try:
        value = float(text.strip())
    except (AttributeError, ValueError):
        return default
    return value if math.isfinite(value) else default


def parse_label(text: str, labels: Sequence[str]) -> int:
    """Index of a predicted label word, or -1 if it is no label (counted wrong, never a crash)."""
    text = text.strip()
    return labels.index(text) if text in labels else -1
