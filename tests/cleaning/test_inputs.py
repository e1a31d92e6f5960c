"""Bad input in long runs: counted and skipped, never a crash; schemas checked up front; WARC."""

from __future__ import annotations

import gzip
import json

import pytest

from taskmix.cleaning.io import read_documents, read_jsonl, read_text, read_warc
from taskmix.cleaning.pipeline import clean_corpus
from taskmix.cleaning.presets import get_preset
from taskmix.errors import ConfigError

from .helpers import numbered_page, page, read_texts, warc_bytes, write_jsonl, write_jsonl_gz

FAST = {"langdetect": False, "sentence_splitter": "regex"}


def test_lone_surrogates_are_undecodable_not_a_crash(tmp_path):
    # json.dumps writes "\ud800" as an escape: valid JSON, but not encodable as UTF-8.
    src = write_jsonl(
        tmp_path / "in.jsonl",
        [
            {"text": page("Broken \ud800 surrogate line here.")},
            {"text": page(), "url": "http://x.org/\udc00"},
            {"text": numbered_page(1)},
        ],
    )
    docs = list(read_jsonl(src))
    assert [d.problem for d in docs] == ["undecodable", "undecodable", None]
    assert docs[0].where == f"{src}:1"
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper", **FAST), shards=2)
    assert stats.pages_removed["input_undecodable"] == 2
    assert read_texts(tmp_path / "out") == [numbered_page(1)]
    assert not stats.problems()


def test_json_that_python_refuses_is_a_bad_record(tmp_path):
    src = tmp_path / "in.jsonl"
    deep = '{"text": ' + "[" * 100_000 + "]" * 100_000 + "}"  # RecursionError in json
    huge = '{"text": "x", "n": ' + "1" * 5000 + "}"  # ValueError: int too long
    src.write_text(deep + "\n" + huge + "\n" + json.dumps({"text": page()}) + "\n")
    assert [d.problem for d in read_jsonl(src)] == ["bad_record", "bad_record", None]


def _truncate(path, keep: float) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def test_truncated_jsonl_gz_keeps_what_was_read(tmp_path):
    records = [{"text": numbered_page(i)} for i in range(400)]
    src = write_jsonl_gz(tmp_path / "in.jsonl.gz", records)
    _truncate(src, 0.6)
    docs = list(read_jsonl(src))
    good = [d for d in docs if d.problem is None]
    assert docs[-1].problem == "broken_file" and docs[-1].where.startswith(f"{src}:")
    assert [d.problem for d in docs].count("broken_file") == 1
    assert 50 < len(good) < 400
    assert [d.text for d in good] == [r["text"] for r in records[: len(good)]]

    other = write_jsonl(tmp_path / "ok.jsonl", [{"text": numbered_page(1000)}])
    cfg = get_preset("paper", dedup="none", **FAST)
    stats = clean_corpus([src, other], tmp_path / "out", cfg, shards=2)
    assert stats.pages_removed["input_broken_file"] == 1
    assert stats.pages_out == len(good) + 1 and not stats.problems()


@pytest.mark.parametrize("mode", ["block", "file"])
def test_truncated_txt_gz_is_counted(tmp_path, mode):
    src = tmp_path / "in.txt.gz"
    with gzip.open(src, "wt") as f:
        f.write("\n\n".join(numbered_page(i) for i in range(300)))
    _truncate(src, 0.5)
    docs = list(read_text(src, mode))
    assert docs[-1].problem == "broken_file"
    if mode == "block":
        assert docs[0].text.strip() == numbered_page(0) and len(docs) > 20
    else:
        assert len(docs) == 1
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper", **FAST), text_mode=mode)
    assert stats.pages_removed["input_broken_file"] == 1 and not stats.problems()


def test_parquet_without_text_column_fails_before_any_work(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    good = write_jsonl(tmp_path / "a.jsonl", [{"text": page()}])
    bad = tmp_path / "b.parquet"
    pq.write_table(pa.table({"body": ["x"]}), bad)
    cfg = get_preset("paper", **FAST)
    with pytest.raises(ConfigError, match=r"b\.parquet.*'text' column.*\['body'\]"):
        clean_corpus([good, bad], tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()
    bad.write_bytes(b"not parquet at all")
    with pytest.raises(ConfigError, match=r"b\.parquet: not a readable Parquet file"):
        clean_corpus([good, bad], tmp_path / "out", cfg)
    pq.write_table(pa.table({"text": [1, 2]}), bad)
    with pytest.raises(ConfigError, match="'text' must be string"):
        clean_corpus([good, bad], tmp_path / "out", cfg)
    assert not (tmp_path / "out").exists()


def test_parquet_rows_are_read_with_their_position(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"text": [page(), None], "url": ["http://a.org/", None]}), src)
    docs = list(read_documents(src))
    assert [(d.problem, d.pos, d.url) for d in docs] == [
        (None, 0, "http://a.org/"),
        ("bad_record", 1, None),
    ]


# --- WARC --------------------------------------------------------------------------------------

TEXTS = [numbered_page(i) for i in range(4)]


def _summary(path):
    return [(d.problem, d.pos, d.url) for d in read_warc(path)]


def test_warc_gz_with_corrupt_middle_record_counts_it_once(tmp_path):
    data, offsets = warc_bytes(TEXTS, gz=True)
    middle = (offsets[1] + offsets[2]) // 2  # inside record 1's gzip member
    data = data[:middle] + bytes(b ^ 0xFF for b in data[middle : middle + 16]) + data[middle + 16 :]
    src = tmp_path / "in.warc.gz"
    src.write_bytes(data)
    assert _summary(src) == [
        (None, offsets[0], "http://site0.com/"),
        ("broken_record", offsets[1], None),
        (None, offsets[2], "http://site2.com/"),
        (None, offsets[3], "http://site3.com/"),
    ]
    good = [d.text for d in read_warc(src) if d.problem is None]
    assert good == [TEXTS[0], TEXTS[2], TEXTS[3]]
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper", **FAST))
    assert stats.pages_in == 4 and stats.pages_removed["input_broken_record"] == 1
    assert stats.pages_out == 3 and not stats.problems()


def test_plain_warc_with_truncated_last_record(tmp_path):
    data, offsets = warc_bytes(TEXTS)
    src = tmp_path / "in.warc"
    src.write_bytes(data[:-100])  # warcio reads the short payload without an error
    assert [p for p, _, _ in _summary(src)] == [None, None, None, "broken_record"]
    assert _summary(src)[-1][1] == offsets[3]


def test_plain_warc_with_bytes_missing_mid_record(tmp_path):
    data, offsets = warc_bytes(TEXTS)
    cut = offsets[2] - 150  # in record 1's payload: its Content-Length now runs into record 2
    src = tmp_path / "in.warc"
    src.write_bytes(data[:cut] + data[cut + 60 :])
    summary = _summary(src)
    assert [p for p, _, _ in summary] == [None, "broken_record", None, None]
    assert summary[1][1] == offsets[1] and summary[2][1] == offsets[2] - 60
    assert [d.text for d in read_warc(src) if d.problem is None] == [TEXTS[0], TEXTS[2], TEXTS[3]]


def test_warc_record_with_wrong_digest_is_broken(tmp_path):
    data, offsets = warc_bytes(TEXTS)
    i = data.index(b"on day 2", offsets[2])
    src = tmp_path / "in.wet"
    src.write_bytes(data[:i] + b"on day 9" + data[i + 8 :])  # same length, other bytes
    assert [p for p, _, _ in _summary(src)] == [None, None, "broken_record", None]


def test_gzip_jsonl_with_garbage_after_records(tmp_path):
    src = write_jsonl_gz(tmp_path / "in.jsonl.gz", [{"text": page()}])
    with open(src, "ab") as f:
        f.write(b"\x1f\x8b\x08garbage")  # a second gzip member that is not one
    docs = list(read_jsonl(src))
    assert [d.problem for d in docs] == [None, "broken_file"]
    assert json.dumps(docs[0].text) == json.dumps(page())
