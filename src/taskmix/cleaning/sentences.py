"""Sentence splitting: needed to count sentences per page and to hash three-sentence spans.

The TFDS C4 code used NLTK's Punkt English model. ``punkt`` uses it when the NLTK data
(``punkt_tab``) is installed locally and otherwise NLTK's untrained Punkt defaults (the same
algorithm without the English abbreviation list); nothing is ever downloaded. ``regex`` ends a
sentence at ``.``, ``?`` or ``!`` (plus closing quotes/brackets) followed by whitespace: much
faster, and what the TFDS docstring describes ("a simple count of end marks").
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache

from taskmix.errors import ConfigError

Spans = list[tuple[int, int]]
SpanFn = Callable[[str], Spans]

_SENTENCE_END = re.compile(r"[.!?]+[\"')\]]*\s+")


def regex_spans(text: str) -> Spans:
    """(start, end) of each sentence of ``text``; whitespace between sentences is left out."""
    spans: Spans = []
    start = len(text) - len(text.lstrip())
    for match in _SENTENCE_END.finditer(text):
        end = match.start() + len(match.group().rstrip())
        if end > start:
            spans.append((start, end))
        start = match.end()
    end = len(text.rstrip())
    if end > start:
        spans.append((start, end))
    return spans


@lru_cache(maxsize=1)
def _punkt():
    try:
        from nltk.tokenize.punkt import PunktSentenceTokenizer
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ConfigError(
            "sentence_splitter 'punkt' needs nltk (pip install nltk), or use 'regex'"
        ) from err
    try:
        from nltk.tokenize.punkt import PunktTokenizer

        return PunktTokenizer("english")  # trained English parameters, if installed
    except (ImportError, LookupError, OSError):
        return PunktSentenceTokenizer()


def punkt_spans(text: str) -> Spans:
    return list(_punkt().span_tokenize(text))


def get_splitter(kind: str) -> SpanFn:
    if kind == "punkt":
        _punkt()  # fail early (clear error) when nltk is missing
        return punkt_spans
    if kind == "regex":
        return regex_spans
    raise ConfigError(f"sentence_splitter: expected 'punkt' or 'regex', got {kind!r}")
