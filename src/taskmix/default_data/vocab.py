"""The default vocabulary: a SentencePiece model trained on the default data, once per seed.

``default_vocabulary()`` returns a ``LazyVocabulary``: nothing is generated, trained or loaded
until a text is first encoded. The model is trained on the training corpus plus the formatted
inputs and targets of the first ``TEXTS_PER_TASK`` training records of every task (enough to
cover every template and label word, small enough to train in a few seconds), and saved to
``data_dir(seed)/spm/default.model`` through a temporary folder and an atomic rename.

``VOCAB_SIZE`` is 1400 pieces (plus 100 sentinels): the invented world has few distinct words,
and SentencePiece finds only about 1500 useful pieces in it, so a larger request would only be
cut down (with a warning) to what the data supports.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from taskmix.data.vocabulary import LazyVocabulary, Vocabulary
from taskmix.default_data.generate import corpus_files, ensure_data, task_files
from taskmix.default_data.tasks import SPECS

VOCAB_SIZE = 1400
TEXTS_PER_TASK = 300
MODEL_NAME = "default.model"

_cache: dict[Path, LazyVocabulary] = {}


def training_texts(root: Path) -> Iterator[str]:
    """Corpus documents, then inputs and targets of each task's first training records."""
    with open(corpus_files(root)["train"], encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)["text"]
    for spec in SPECS:
        with open(task_files(root, spec.name)["train"], encoding="utf-8") as f:
            for i, line in enumerate(f):
                if i >= TEXTS_PER_TASK:
                    break
                example = spec.format(json.loads(line))
                yield example["inputs"]
                yield example["targets"]


def model_path(seed: int = 0) -> Path:
    """The trained model of ``seed``; trains it first if needed (deterministic, a few seconds)."""
    from taskmix.data.tokenizer import train_sentencepiece

    root = ensure_data(seed)
    final = root / "spm" / MODEL_NAME
    if final.is_file():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".train.", dir=final.parent))
    try:
        trained = train_sentencepiece(training_texts(root), tmp / "default", VOCAB_SIZE, seed=seed)
        os.replace(trained, final)  # a concurrent trainer writes the same bytes
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def default_vocabulary(seed: int = 0) -> Vocabulary:
    """The shared vocabulary of the default tasks (one object per data folder)."""
    from taskmix.default_data.generate import data_dir

    key = data_dir(seed)
    if key not in _cache:

        def load() -> Vocabulary:
            from taskmix.data.tokenizer import SentencePieceVocabulary

            return SentencePieceVocabulary(model_path(seed))

        _cache[key] = LazyVocabulary(load)
    return _cache[key]
