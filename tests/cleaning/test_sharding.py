"""Shards read disjoint parts of the input (whole files or byte ranges), with the same result."""

from __future__ import annotations

import io as pyio
import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmix.cleaning import io, pipeline
from taskmix.cleaning.io import read_documents
from taskmix.cleaning.pipeline import Piece, clean_corpus, plan_shards
from taskmix.cleaning.presets import get_preset
from taskmix.errors import ConfigError

from .helpers import (
    crash_stage1_on,
    numbered_page,
    page,
    read_texts,
    write_jsonl,
    write_jsonl_gz,
)

FAST = {"langdetect": False, "sentence_splitter": "regex"}
SPAN = "Shared sentence number one is here. Shared sentence number two follows. And the third shared one."


def _docs(path, mode="block", start=0, end=None):
    return [(d.pos, d.text, d.problem) for d in read_documents(path, mode, start, end)]


def _cuts(size: int, fractions: list[float]) -> list[tuple[int, int | None]]:
    points = sorted({0, *(int(f * size) for f in fractions)})
    return [(a, b) for a, b in zip(points, points[1:] + [None], strict=True)]


line_st = st.sampled_from(["", " ", "Alpha beta gamma.", "x", "Ünïcode line here.", "  padded  "])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(line_st, max_size=30),
    fractions=st.lists(st.floats(0, 1), max_size=6),
    final_newline=st.booleans(),
)
def test_byte_ranges_read_every_line_and_block_exactly_once(
    tmp_path_factory, lines, fractions, final_newline
):
    tmp = tmp_path_factory.mktemp("r")
    text = "\n".join(lines) + ("\n" if final_newline else "")
    txt = tmp / "in.txt"
    txt.write_text(text, encoding="utf-8")
    jsonl = tmp / "in.jsonl"
    jsonl.write_text(
        "".join(json.dumps({"text": ln}) + "\n" if ln.strip() else ln + "\n" for ln in lines)
    )
    for path in (txt, jsonl):
        whole = _docs(path)
        ranged = [
            d for a, b in _cuts(path.stat().st_size, fractions) for d in _docs(path, "block", a, b)
        ]
        assert ranged == whole, path.name


def test_plan_cuts_big_files_and_spreads_whole_ones(tmp_path):
    big = write_jsonl(tmp_path / "big.jsonl", [{"text": page()}] * 300)
    size = big.stat().st_size
    plan = plan_shards([big], 3)
    assert [p[0].start for p in plan] == [0, size // 3, 2 * size // 3]
    assert [p[0].end for p in plan] == [size // 3, 2 * size // 3, None]
    gz = [write_jsonl_gz(tmp_path / f"{i}.jsonl.gz", [{"text": page()}] * 20) for i in range(6)]
    plan = plan_shards(gz, 3)
    assert [len(p) for p in plan] == [2, 2, 2]
    assert sorted(p.path for pieces in plan for p in pieces) == sorted(map(str, gz))
    assert all(p.start == 0 and p.end is None for pieces in plan for p in pieces)
    # text in file mode is one document: never cut
    txt = tmp_path / "one.txt"
    txt.write_text(page() * 50)
    assert [len(p) for p in plan_shards([txt], 4, "file")].count(1) == 1
    assert plan_shards([txt], 2, "block")[1] == (Piece(0, str(txt), txt.stat().st_size // 2),)


def _mixed_inputs(tmp_path):
    recs = [
        {"text": numbered_page(i % 37) + ("\n" + SPAN if i % 5 == 0 else "")} for i in range(120)
    ]
    big = write_jsonl(tmp_path / "a_big.jsonl", recs + ["not json", {"text": page()}])
    gz = write_jsonl_gz(
        tmp_path / "b.jsonl.gz", [{"text": numbered_page(i)} for i in range(30, 60)]
    )
    txt = tmp_path / "c.txt"
    txt.write_text("\n\n\n".join(numbered_page(i) for i in range(50, 90)) + "\n\nMenu\nHome\n")
    return [big, gz, txt]


@pytest.mark.parametrize("preset", ["paper", "tfds"])
def test_union_of_shards_equals_one_shard(tmp_path, preset):
    files = _mixed_inputs(tmp_path)
    cfg = get_preset(preset, **FAST)
    one = clean_corpus(files, tmp_path / "one", cfg, shards=1)
    texts = sorted(read_texts(tmp_path / "one"))
    assert one.pages_out > 50 and one.pages_removed["input_bad_record"] == 1
    for shards in (2, 5):
        many = clean_corpus(files, tmp_path / f"s{shards}", cfg, shards=shards)
        assert sorted(read_texts(tmp_path / f"s{shards}")) == texts
        assert many.as_dict() == one.as_dict()


class CountingFile(pyio.FileIO):
    """Counts the bytes the OS hands over (under the buffered reader), per shard and file."""

    reads: Counter = Counter()
    shard = -1

    def readinto(self, buffer):
        n = super().readinto(buffer)
        CountingFile.reads[(CountingFile.shard, self.name)] += n or 0
        return n


@pytest.fixture
def counted(monkeypatch):
    """{(shard, path): bytes read} for plain inputs; gzip inputs count as opened (0 bytes)."""
    CountingFile.reads = Counter()
    real_open, real_stage1 = io._open_binary, pipeline.run_stage1

    def open_counted(path):
        if str(path).endswith(".gz"):
            CountingFile.reads[(CountingFile.shard, str(path))] += 0
            return real_open(path)
        return pyio.BufferedReader(CountingFile(str(path)))

    def stage1(job):
        CountingFile.shard = job.shard
        return real_stage1(job)

    monkeypatch.setattr(io, "_open_binary", open_counted)
    monkeypatch.setattr(pipeline, "run_stage1", stage1)
    return CountingFile.reads


def test_each_shard_reads_only_its_range_of_one_big_file(tmp_path, counted):
    big = write_jsonl(tmp_path / "big.jsonl", [{"text": numbered_page(i)} for i in range(600)])
    size = big.stat().st_size
    assert size > 200_000
    clean_corpus([big], tmp_path / "out", get_preset("paper", dedup="none", **FAST), shards=4)
    per_shard = {shard: n for (shard, _), n in counted.items()}
    assert sorted(per_shard) == [0, 1, 2, 3]
    slack = 2 * 8192 + 1000  # one buffer before the start, one line and buffer past the end
    assert all(n <= size / 4 + slack for n in per_shard.values()), per_shard
    assert size <= sum(per_shard.values()) <= size + 4 * slack


def test_each_shard_opens_only_its_own_files(tmp_path, counted):
    files = [
        write_jsonl_gz(
            tmp_path / f"{i}.jsonl.gz", [{"text": numbered_page(10 * i + k)} for k in range(10)]
        )
        for i in range(4)
    ]
    stats = clean_corpus(files, tmp_path / "out", get_preset("paper", **FAST), shards=2)
    opened = sorted((shard, name.rsplit("/", 1)[-1]) for shard, name in counted)
    assert opened == [(0, "0.jsonl.gz"), (0, "1.jsonl.gz"), (1, "2.jsonl.gz"), (1, "3.jsonl.gz")]
    assert stats.pages_out == 40


def test_resume_refuses_changed_input_size(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": numbered_page(k)} for k in range(6)])
    cfg = get_preset("paper", **FAST)
    real = crash_stage1_on(monkeypatch, 1)
    with pytest.raises(RuntimeError):
        clean_corpus([src], tmp_path / "out", cfg, shards=2)
    monkeypatch.setattr(pipeline, "run_stage1", real)
    with open(src, "a") as f:
        f.write(json.dumps({"text": page()}) + "\n")
    with pytest.raises(ConfigError, match="input_sizes"):
        clean_corpus([src], tmp_path / "out", cfg, shards=2, resume=True)
