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
from itertools import islice
from pathlib import Path

from taskmix.cleaning.io import read_documents, splittable
from taskmix.cleaning.pipeline import Piece, iter_ordered, plan_shards
from taskmix.data.record_counts import cached_count
from taskmix.data.sources import check_shard
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
from taskmix.errors import ConfigError, RecordError

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
    """Records ``{"text"}`` of cleaned part files, as one split.

    Shards read disjoint parts of the files, so a rank pays only for its own share:

    * at least as many files as shards: whole files, dealt round-robin by sorted path;
    * fewer files, all uncompressed JSONL: byte ranges (``pipeline.plan_shards``; a record
      belongs to the range where its line starts, and is tagged ``path@byte`` when the range
      does not start the file);
    * otherwise (fewer files, some compressed or Parquet): every shard reads every file and
      keeps records ``i % num_shards == shard_index``, as the other taskmix sources.

    Shards are disjoint and together hold every record; a shard's records and their order
    depend only on the files and (shard_index, num_shards).
    """

    def __init__(self, files: Sequence[Path], split: str = "train"):
        self.files = list(files)
        self.split = split
        self._count: int | None = None

    @property
    def splits(self) -> Sequence[str]:
        return [self.split]

    def data_files(self) -> list[Path]:
        return list(self.files)

    def _pieces(self, shard_index: int, num_shards: int) -> list[Piece] | None:
        """What one shard reads, in input order; None when it must read everything."""
        if num_shards == 1:
            return [Piece(i, str(p)) for i, p in enumerate(self.files)]
        if len(self.files) >= num_shards:
            by_path = sorted(range(len(self.files)), key=lambda i: str(self.files[i]))
            return [Piece(i, str(self.files[i])) for i in sorted(by_path[shard_index::num_shards])]
        if all(splittable(p) for p in self.files):
            return list(plan_shards(self.files, num_shards)[shard_index])
        return None

    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        check_shard(shard_index, num_shards)
        self.check_split(split)
        pieces = self._pieces(shard_index, num_shards)
        if pieces is None:
            docs = islice(iter_ordered(self._pieces(0, 1)), shard_index, None, num_shards)
        else:
            docs = iter_ordered(pieces)
        for _, doc in docs:
            if doc.text is None:
                ctx.handle(
                    RecordError(f"unreadable record ({doc.problem})", where=doc.where, field="text")
                )
            else:
                yield {"text": doc.text, "_where": doc.where}

    def num_records(self, split: str) -> int:
        self.check_split(split)
        if self._count is None:
            self._count = sum(cached_count(p, "corpus", _count_documents) for p in self.files)
        return self._count


def _count_documents(path: Path) -> int:
    """Records of one part file, unreadable ones included (as ``iter_records`` reads them)."""
    return sum(1 for _ in read_documents(path))


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
