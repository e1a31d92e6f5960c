"""CorpusSource sharding: disjoint, complete, deterministic, and each shard reads only its share."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest

from taskmix.cleaning import io as cleaning_io
from taskmix.cleaning.corpus import CorpusSource
from taskmix.data.task import PreprocessContext

from .helpers import write_jsonl, write_jsonl_gz


def _ctx(shard_index: int = 0, num_shards: int = 1) -> PreprocessContext:
    return PreprocessContext(
        "corpus", "train", {}, shard_index=shard_index, num_shards=num_shards, on_error="skip"
    )


def _texts(source: CorpusSource, shard_index: int = 0, num_shards: int = 1) -> list[str]:
    ctx = _ctx(shard_index, num_shards)
    records = source.iter_records("train", ctx, shard_index=shard_index, num_shards=num_shards)
    return [r["text"] for r in records]


def _corpus(tmp_path: Path, sizes: list[int], gz: tuple[int, ...] = ()) -> list[Path]:
    files, n = [], 0
    for f, size in enumerate(sizes):
        records = [{"text": f"document {n + i} " + "x" * (i % 7)} for i in range(size)]
        n += size
        if f in gz:
            files.append(write_jsonl_gz(tmp_path / f"part-{f:02d}.jsonl.gz", records))
        else:
            files.append(write_jsonl(tmp_path / f"part-{f:02d}.jsonl", records))
    return files


@pytest.mark.parametrize(
    ("sizes", "gz", "num_shards"),
    [
        ([5, 0, 9, 3, 7], (), 2),  # whole files
        ([5, 0, 9, 3, 7], (1,), 5),  # whole files, one compressed
        ([40, 3], (), 4),  # byte ranges
        ([1], (), 3),  # byte ranges, fewer records than shards
        ([20, 11], (0,), 3),  # fallback: every shard reads everything
    ],
)
def test_shards_are_disjoint_complete_and_deterministic(tmp_path, sizes, gz, num_shards):
    source = CorpusSource(_corpus(tmp_path, sizes, gz))
    everything = _texts(source)
    assert len(everything) == source.num_records("train") == sum(sizes)
    shards = [_texts(source, k, num_shards) for k in range(num_shards)]
    assert Counter(t for shard in shards for t in shard) == Counter(everything)
    assert sum(len(s) for s in shards) == len(everything)  # texts are unique: disjoint
    assert shards == [_texts(source, k, num_shards) for k in range(num_shards)]
    for shard in shards:  # each shard keeps the input order
        assert shard == [t for t in everything if t in set(shard)]


def test_whole_files_each_shard_opens_only_its_own(tmp_path, monkeypatch):
    files = _corpus(tmp_path, [3, 4, 2, 5, 1])
    source = CorpusSource(list(reversed(files)))  # assignment follows sorted paths, not input
    opened: list[Path] = []
    real_open = cleaning_io._open_binary
    monkeypatch.setattr(
        cleaning_io, "_open_binary", lambda path: opened.append(Path(path)) or real_open(path)
    )
    for k in range(2):
        opened.clear()
        _texts(source, k, 2)
        assert opened == list(reversed(files[k::2]))


def test_byte_ranges_read_each_line_about_once(tmp_path, monkeypatch):
    source = CorpusSource(_corpus(tmp_path, [50, 30]))
    lines = 0
    real_iter = cleaning_io._iter_lines

    def counting(path, start=0):
        nonlocal lines
        for item in real_iter(path, start):
            lines += 1
            yield item

    monkeypatch.setattr(cleaning_io, "_iter_lines", counting)
    shards = [_texts(source, k, 4) for k in range(4)]
    assert all(shards) and sum(len(s) for s in shards) == 80
    assert lines <= 80 + 4 + 1  # at most one line past its range per shard (and per piece end)


def test_unreadable_record_reported_by_one_shard(tmp_path):
    path = write_jsonl(tmp_path / "part.jsonl", [{"text": f"doc {i}"} for i in range(9)] + ["{"])
    source = CorpusSource([path])
    assert source.num_records("train") == 10
    skipped = 0
    for k in range(3):
        ctx = _ctx(k, 3)
        list(source.iter_records("train", ctx, shard_index=k, num_shards=3))
        skipped += sum(ctx.report.skipped.values())
    assert skipped == 1


def test_bad_shard_arguments(tmp_path):
    source = CorpusSource(_corpus(tmp_path, [2]))
    with pytest.raises(ValueError):
        _texts(source, 2, 2)
