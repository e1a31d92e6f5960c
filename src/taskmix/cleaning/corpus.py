"""Turn a cleaned corpus (JSONL or Parquet part files) into a text Task for unsupervised objectives.

From YAML, a ``pretraining:`` entry of a task file does this and applies an objective
(``taskmix.data.declarative.build_pretraining_task``, via ``CorpusSource``)::

    pretraining:
      - {name: c4_mini, corpus: data/c4_clean/, objective: span_corruption, input_length: 512}

From Python, ``corpus_task("c4_mini", ["data/c4_clean/"], vocabulary)`` gives the task without
an objective.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from taskmix.cleaning.io import read_documents
from taskmix.data.errors import ConfigError, RecordError
from taskmix.data.task import (
    Example,
    Feature,
    PreprocessContext,
    Source,
    Task,
    map_examples,
    tokenize_no_eos,
)
from taskmix.data.vocabulary import Vocabulary

_SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")


def corpus_files(paths: str | Path | Sequence[str | Path]) -> list[Path]:
    """Cleaned part files from files and folders (folders: their *.jsonl / *.parquet, sorted)."""
    items = [paths] if isinstance(paths, (str, Path)) else list(paths)
    files: list[Path] = []
    for raw in items:
        p = Path(raw)
        if p.is_dir():
            found = sorted(f for f in p.iterdir() if f.is_file() and f.name.endswith(_SUFFIXES))
            if not found:
                raise ConfigError(f"corpus folder {str(p)!r} holds no {_SUFFIXES} files")
            files.extend(found)
        elif p.is_file() and p.name.endswith(_SUFFIXES):
            files.append(p)
        else:
            raise ConfigError(
                f"corpus path {str(p)!r}: expected an existing {_SUFFIXES} file or folder"
            )
    return files


class CorpusSource(Source):
    """Records ``{"text"}`` of cleaned part files, as one split."""

    def __init__(self, files: Sequence[Path], split: str = "train"):
        self.files = list(files)
        self.split = split
        self._count: int | None = None

    @property
    def splits(self) -> Sequence[str]:
        return [self.split]

    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        self.check_split(split)
        i = 0
        for path in self.files:
            for doc in read_documents(path):
                if i % num_shards == shard_index:
                    if doc.text is None:
                        ctx.handle(
                            RecordError(
                                f"unreadable record ({doc.problem})", where=doc.where, field="text"
                            )
                        )
                    else:
                        yield {"text": doc.text, "_where": doc.where}
                i += 1

    def num_records(self, split: str) -> int:
        self.check_split(split)
        if self._count is None:
            self._count = sum(1 for path in self.files for _ in read_documents(path))
        return self._count


def _to_targets(ex: Example) -> Example:
    return {"targets": ex["text"], "_where": ex.get("_where")}


def corpus_task(
    name: str,
    paths: str | Path | Sequence[str | Path],
    vocabulary: Vocabulary,
    *,
    split: str = "train",
    description: str = "",
) -> Task:
    """A task whose examples are ``{"targets": tokens}`` (no EOS): input to an objective.

    Objectives (span corruption, prefix LM, ...) build ``inputs``/``targets`` from the tokens
    and append EOS themselves, hence ``tokenize_no_eos``.
    """
    return Task(
        name=name,
        source=CorpusSource(corpus_files(paths), split),
        preprocessors=[map_examples(_to_targets), tokenize_no_eos],
        output_features={
            "inputs": Feature(vocabulary, add_eos=True, required=False),
            "targets": Feature(vocabulary, add_eos=True),
        },
        family="pretraining",
        description=description or f"cleaned text corpus {name}",
    )
