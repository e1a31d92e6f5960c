"""Cleaning configs: one typed dataclass, two named presets (``paper`` and ``tfds``).

The presets differ exactly where SPEC §3 says the T5 paper and the TFDS code that produced C4
differ; every other rule is shared. Any field can be overridden by keyword, or from the
command line as ``key=value`` text (``parse_overrides``), or from a YAML file of fields
(``load_clean_config``).
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal, Union

from taskmix.errors import ConfigError
from taskmix.yamlconf import parse_assignment, read_yaml_file

Dedup = Literal["none", "lines", "spans"]
SentenceSplitter = Literal["punkt", "regex"]


@dataclass(frozen=True)
class CleanConfig:
    """Every threshold of the C4 rules. ``None`` or ``False`` switches a rule off."""

    # Line rules (a line is a newline-separated piece of a page).
    max_word_length: int | None = None  # drop lines with a longer whitespace-separated word
    strip_citations: bool = False  # remove "[1]", "[edit]", "[citation needed]" from lines
    require_terminal_punct: bool = True  # keep lines ending in an end mark (and not in "...")
    end_marks: str = '.?!"'  # each character is an end mark (datatrove's C4 filter adds "'")
    min_words_per_line: int = 3
    drop_javascript_lines: bool = True
    drop_policy_lines: bool = False  # cookie / privacy-policy / terms-of-use lines
    # Page rules.
    drop_lorem_ipsum: bool = True
    drop_curly_brace: bool = True
    bad_words_file: str | None = None  # one word per line (LDNOOBW "en"); None = rule off
    min_sentences: int = 5
    langdetect: bool = True
    language: str = "en"
    min_language_prob: float = 0.99
    max_page_chars: int | None = 190_000  # gigantic pages are skipped (TFDS is_valid_length)
    # Variants: RealNews-like (allowed domains) and WebText-like (allowed URLs).
    domain_allowlist_file: str | None = None
    url_list_file: str | None = None
    # Corpus-level deduplication.
    dedup: Dedup = "spans"
    span_sentences: int = 3
    recheck_min_sentences: bool = False  # re-apply min_sentences after dedup (TFDS does)
    minhash: bool = False
    minhash_threshold: float = 0.8
    minhash_num_perm: int = 128
    minhash_ngram: int = 5
    sentence_splitter: SentenceSplitter = "punkt"

    def __post_init__(self) -> None:
        if self.dedup not in ("none", "lines", "spans"):
            raise ConfigError(f"dedup: expected 'none', 'lines' or 'spans', got {self.dedup!r}")
        if self.sentence_splitter not in ("punkt", "regex"):
            raise ConfigError(
                f"sentence_splitter: expected 'punkt' or 'regex', got {self.sentence_splitter!r}"
            )
        for key in ("min_words_per_line", "min_sentences", "span_sentences", "minhash_ngram"):
            if getattr(self, key) < 0 or (key == "span_sentences" and self.span_sentences < 1):
                raise ConfigError(f"{key}: expected a non-negative count, got {getattr(self, key)}")
        if not self.end_marks:
            raise ConfigError("end_marks: expected at least one character, got ''")
        if not 0.0 <= self.min_language_prob <= 1.0:
            raise ConfigError(f"min_language_prob: expected 0..1, got {self.min_language_prob}")
        if not 0.0 < self.minhash_threshold <= 1.0:
            raise ConfigError(f"minhash_threshold: expected (0, 1], got {self.minhash_threshold}")

    @property
    def needs_global_pass(self) -> bool:
        return self.dedup != "none" or self.minhash

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PAPER = CleanConfig()

TFDS = CleanConfig(
    max_word_length=1000,
    strip_citations=True,
    min_words_per_line=5,
    drop_policy_lines=True,
    min_sentences=3,
    dedup="lines",
    recheck_min_sentences=True,
)

PRESETS: dict[str, CleanConfig] = {"paper": PAPER, "tfds": TFDS}


def get_preset(name: str, **overrides: Any) -> CleanConfig:
    """The named preset with ``overrides`` applied; unknown names and keys are ConfigErrors."""
    if name not in PRESETS:
        raise ConfigError(f"unknown cleaning preset {name!r}; expected one of {sorted(PRESETS)}")
    fields = {f.name for f in dataclasses.fields(CleanConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ConfigError(f"unknown cleaning option(s) {unknown}; known: {sorted(fields)}")
    return dataclasses.replace(PRESETS[name], **overrides)


_NONE = ("none", "null", "~")
_BOOLS = {"true": True, "yes": True, "on": True, "1": True}
_BOOLS |= {"false": False, "no": False, "off": False, "0": False}


@cache
def _field_types() -> dict[str, Any]:
    return typing.get_type_hints(CleanConfig)


def _split_optional(hint: Any) -> tuple[Any, bool]:
    """(the type without None, whether None is allowed)."""
    if typing.get_origin(hint) in (Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return args[0], len(args) < len(typing.get_args(hint))
    return hint, False


def _describe(hint: Any) -> str:
    base, optional = _split_optional(hint)
    if typing.get_origin(base) is Literal:
        text = "one of " + ", ".join(repr(a) for a in typing.get_args(base))
    else:
        text = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}[base]
    return text + (" or none" if optional else "")


def parse_value(key: str, text: str) -> Any:
    """The value of ``key=text`` typed as the CleanConfig field ``key`` (no eval, no YAML).

    Booleans: true/false/yes/no/on/off/1/0; ``none``/``null`` for fields that allow None;
    strings are taken as they are.
    """
    types_ = _field_types()
    if key not in types_:
        raise ConfigError(f"unknown cleaning option {key!r}; known: {sorted(types_)}")
    base, optional = _split_optional(types_[key])
    word = text.strip()
    if optional and word.lower() in _NONE:
        return None
    try:
        if typing.get_origin(base) is Literal:
            if word in typing.get_args(base):
                return word
        elif base is bool:
            return _BOOLS[word.lower()]
        elif base is int:
            return int(word)
        elif base is float:
            value = float(word)
            if math.isfinite(value):
                return value
        elif base is str:
            return text
    except (KeyError, ValueError):
        pass
    raise ConfigError(f"cleaning option {key}={text!r}: expected {_describe(types_[key])}")


def load_clean_config(path: str | Path) -> tuple[str | None, dict[str, Any]]:
    """``(preset, overrides)`` from a YAML file of CleanConfig fields (``preset:`` optional),
    read strictly; a bad key or value names the file and line."""
    file = read_yaml_file(path, what="cleaning config")
    data = dict(file.data or {})
    if not isinstance(file.data or {}, dict):
        raise ConfigError(f"{path}: expected a mapping of cleaning options")
    preset = data.pop("preset", None)
    if preset is not None and not isinstance(preset, str):
        raise ConfigError(f"{file.where(('preset',))}: preset: expected a name, got {preset!r}")
    overrides = {}
    for key, value in data.items():
        text = (
            "none"
            if value is None
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
        )
        try:
            overrides[key] = parse_value(str(key), text)
        except ConfigError as err:
            raise ConfigError(f"{file.where((key,))}: {err}") from None
    return preset, overrides


def parse_overrides(items: Sequence[str]) -> dict[str, Any]:
    """``["key=value", ...]`` (``taskmix clean --set``) as typed CleanConfig overrides."""
    out: dict[str, Any] = {}
    for item in items:
        key, text = parse_assignment(item, example="min_sentences=3")
        out[key] = parse_value(key, text)
    return out
