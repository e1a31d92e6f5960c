"""Small in-memory building blocks for data-layer tests."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence

from taskmix.data.task import Example, Feature, PreprocessContext, Source, Task, tokenize
from taskmix.data.vocabulary import ByteVocabulary


class ListSource(Source):
    """Records held in memory, one list per split."""

    def __init__(self, records: Mapping[str, Sequence[dict]]):
        self._records = {k: list(v) for k, v in records.items()}

    @property
    def splits(self) -> Sequence[str]:
        return list(self._records)

    def iter_records(
        self, split: str, ctx: PreprocessContext, *, shard_index: int = 0, num_shards: int = 1
    ) -> Iterator[Example]:
        for i, record in enumerate(self._records[split]):
            if i % num_shards == shard_index:
                yield {**record, "_where": f"mem/{split}:{i + 1}"}

    def num_records(self, split: str) -> int:
        return len(self._records[split])


def make_task(name: str, n: int, *, preprocessors=None, splits=("train", "validation")) -> Task:
    vocab = ByteVocabulary()
    records = {
        s: [{"inputs": f"{name} {s} {i}", "targets": f"t{i}"} for i in range(n)] for s in splits
    }
    return Task(
        name=name,
        source=ListSource(records),
        preprocessors=preprocessors if preprocessors is not None else [tokenize],
        output_features={"inputs": Feature(vocab), "targets": Feature(vocab)},
    )
