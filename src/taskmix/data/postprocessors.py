"""Postprocessors: turn a decoded prediction (or target) string into what a metric compares.

Each has the signature ``(text, example=None) -> value`` that ``Task.postprocess`` calls. None of
them raises on junk: a prediction that is no label stays a string that matches no label (it is
counted wrong, SPEC §1), and an unparsable score becomes the default.
"""

from __future__ import annotations

from typing import Any

from taskmix.data import formatting


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else str(value)


def strip(text: Any, example: Any = None) -> str:
    """Label words and short answers: surrounding whitespace removed, nothing else."""
    return _text(text).strip()


def normalize_whitespace(text: Any, example: Any = None) -> str:
    """Programs and queries: runs of whitespace become one space, so layout never matters."""
    return " ".join(_text(text).split())


def parse_regression(text: Any, example: Any = None, *, default: float = 0.0) -> float:
    """STS-B style scores: the float a prediction spells, or ``default`` when it spells none."""
    return formatting.parse_regression(_text(text), default=default)
