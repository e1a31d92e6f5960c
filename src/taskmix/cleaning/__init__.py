"""taskmix.cleaning: C4-style corpus cleaning (SPEC §3). See docs/cleaning.md."""

from taskmix.cleaning.corpus import corpus_task
from taskmix.cleaning.pipeline import clean_corpus, clean_text
from taskmix.cleaning.presets import PAPER, PRESETS, TFDS, CleanConfig, get_preset
from taskmix.cleaning.stats import CleanStats

__all__ = [
    "PAPER",
    "PRESETS",
    "TFDS",
    "CleanConfig",
    "CleanStats",
    "clean_corpus",
    "clean_text",
    "corpus_task",
    "get_preset",
]
