"""Sources: round trips, sharding, cached counts, and errors that name file, line and field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmix.data import record_counts
from taskmix.data.source_spec import source_from_config
from taskmix.data.sources import (
    CsvSource,
    FunctionSource,
    HFDatasetSource,
    JsonlSource,
    ParquetSource,
    TextLineSource,
)
from taskmix.data.task import PreprocessContext
from taskmix.errors import ConfigError, RecordError

ROWS = [{"a": f"alpha {i}", "b": str(i)} for i in range(7)]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))


def ctx(on_error: str = "raise") -> PreprocessContext:
    return PreprocessContext(task_name="t", split="train", output_features={}, on_error=on_error)


def read(source, split="train", **kwargs) -> list[dict]:
    return list(source.iter_records(split, ctx(), **kwargs))


def strip_where(records: list[dict]) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "_where"} for r in records]


def write_jsonl(path: Path, rows, blank_after: int | None = None) -> Path:
    lines = [json.dumps(r) for r in rows]
    if blank_after is not None:
        lines.insert(blank_after, "   ")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --------------------------------------------------------------------------- fixtures per type


def make_jsonl(tmp_path: Path):
    return JsonlSource({"train": write_jsonl(tmp_path / "d.jsonl", ROWS)})


def make_csv(tmp_path: Path):
    path = tmp_path / "d.csv"
    path.write_text("a,b\n" + "".join(f"{r['a']},{r['b']}\n" for r in ROWS), encoding="utf-8")
    return CsvSource({"train": str(path)})


def make_parquet(tmp_path: Path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(ROWS), path, row_group_size=3)
    return ParquetSource({"train": path})


def make_hf(tmp_path: Path):
    import datasets

    folder = tmp_path / "hf"
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS), "test": datasets.Dataset.from_list(ROWS[:2])}
    ).save_to_disk(str(folder))
    return HFDatasetSource(folder)


def make_function(tmp_path: Path):
    def rows(split):
        return (dict(r) for r in ROWS)

    return FunctionSource(rows, splits=["train"])


MAKERS = [make_jsonl, make_csv, make_parquet, make_hf, make_function]


@pytest.mark.parametrize("make", MAKERS, ids=lambda m: m.__name__)
def test_round_trip_sharding_and_count(tmp_path, make):
    source = make(tmp_path)
    records = read(source)
    assert strip_where(records) == ROWS
    assert all(isinstance(r["_where"], str) and r["_where"] for r in records)
    assert source.num_records("train") == len(ROWS)
    shards = [read(source, shard_index=i, num_shards=3) for i in range(3)]
    assert [r["_where"] for r in shards[1]] == [r["_where"] for r in records[1::3]]
    merged = sorted((r["_where"] for s in shards for r in s), key=lambda w: int(w.rsplit(":")[1]))
    assert merged == [r["_where"] for r in records]  # disjoint and complete
    with pytest.raises(ValueError, match="shard_index"):
        read(source, shard_index=3, num_shards=3)


def test_where_names_file_and_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS[:3], blank_after=1)
    records = read(JsonlSource({"train": path}))
    assert [r["_where"] for r in records] == [f"{path}:1", f"{path}:3", f"{path}:4"]


def test_parquet_rows_across_batches(tmp_path, monkeypatch):
    monkeypatch.setattr(ParquetSource, "batch_size", 2)
    source = make_parquet(tmp_path)
    records = read(source)
    assert strip_where(records) == ROWS
    assert [r["_where"].rsplit(":", 1)[1] for r in records] == [str(i) for i in range(1, 8)]


def test_hf_single_dataset_folder_and_split_names(tmp_path):
    import datasets

    folder = tmp_path / "single"
    datasets.Dataset.from_list(ROWS[:3]).save_to_disk(str(folder))
    source = HFDatasetSource(str(folder), splits=["validation"])
    assert source.splits == ["validation"]
    records = read(source, "validation")
    assert strip_where(records) == ROWS[:3]
    assert records[2]["_where"] == f"{folder}:3"
    dict_source = make_hf(tmp_path)
    assert sorted(dict_source.splits) == ["test", "train"]
    assert read(dict_source, "test")[1]["_where"] == f"{tmp_path / 'hf'}/test:2"
    with pytest.raises(KeyError, match="nope"):
        HFDatasetSource(tmp_path / "hf", splits=["nope"]).num_records("nope")


def test_text_lines_skip_blank_and_keep_crlf_free_text(tmp_path):
    path = tmp_path / "d.txt"
    path.write_bytes(b"\xef\xbb\xbffirst line\r\n\r\n  \nsecond\tline\nthird")
    source = TextLineSource({"train": path}, field="doc")
    records = read(source)
    assert [r["doc"] for r in records] == ["first line", "second\tline", "third"]
    assert [r["_where"] for r in records] == [f"{path}:1", f"{path}:4", f"{path}:5"]
    assert source.num_records("train") == 3


def test_csv_quotes_multiline_tsv_and_no_quoting(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('x,y\n1,"two\nlines"\n\n3,"a,b"\n', encoding="utf-8")
    records = read(CsvSource({"train": path}))
    assert strip_where(records) == [{"x": "1", "y": "two\nlines"}, {"x": "3", "y": "a,b"}]
    assert [r["_where"] for r in records] == [f"{path}:2", f"{path}:5"]
    assert CsvSource({"train": path}).num_records("train") == 2

    tsv = tmp_path / "d.tsv"
    tsv.write_text('s\tlabel\nhe said "hi\t1\n', encoding="utf-8")
    records = read(CsvSource({"train": tsv}, quotechar=None))
    assert strip_where(records) == [{"s": 'he said "hi', "label": "1"}]
    with pytest.raises(ValueError, match="delimiter"):
        CsvSource({"train": tmp_path / "d.txt"})


def test_list_of_paths_and_glob_keep_order(tmp_path):
    for i in range(3):
        write_jsonl(tmp_path / f"part-{i}.jsonl", [{"i": i, "j": j} for j in range(2)])
    by_glob = read(JsonlSource({"train": str(tmp_path / "part-*.jsonl")}))
    assert [(r["i"], r["j"]) for r in by_glob] == [(i, j) for i in range(3) for j in range(2)]
    by_list = JsonlSource({"train": [tmp_path / "part-2.jsonl", tmp_path / "part-0.jsonl"]})
    assert [r["i"] for r in read(by_list)] == [2, 2, 0, 0]
    assert by_list.num_records("train") == 4
    with pytest.raises(FileNotFoundError, match="no file matches"):
        read(JsonlSource({"train": str(tmp_path / "none-*.jsonl")}))


def test_streaming_yields_before_reading_a_later_bad_line(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n{broken\n', encoding="utf-8")
    records = JsonlSource({"train": path}).iter_records("train", ctx())
    assert next(records)["a"] == 1
    with pytest.raises(RecordError):
        next(records)


# --------------------------------------------------------------------------- counts


def test_count_is_cached_on_disk(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "d.jsonl", ROWS, blank_after=2)
    assert JsonlSource({"train": path}).num_records("train") == 7

    def boom(self, p):
        raise AssertionError("recounted a cached file")

    monkeypatch.setattr(JsonlSource, "_count_file", boom)
    assert JsonlSource({"train": path}).num_records("train") == 7  # a fresh source: from disk
    # The same file read as text lines is a different count kind, counted separately.
    assert TextLineSource({"train": path}).num_records("train") == 7

    write_jsonl(path, ROWS + ROWS[:1])  # size and mtime change: the cache entry is stale
    with pytest.raises(AssertionError, match="recounted"):
        JsonlSource({"train": path}).num_records("train")
    monkeypatch.undo()
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))
    assert JsonlSource({"train": path}).num_records("train") == 8


def test_corrupt_cache_file_is_ignored_and_rewritten(tmp_path):
    table = tmp_path / "cache" / "record_counts.json"
    table.parent.mkdir(parents=True)
    table.write_text("{not json", encoding="utf-8")
    path = write_jsonl(tmp_path / "d.jsonl", ROWS)
    assert JsonlSource({"train": path}).num_records("train") == 7
    entries = json.loads(table.read_text(encoding="utf-8"))
    assert [e["count"] for e in entries.values()] == [7]
    assert not list(table.parent.glob("*.tmp"))


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    lines=st.lists(
        st.one_of(
            st.dictionaries(st.text(max_size=3), st.text(max_size=5), max_size=2).map(json.dumps),
            st.sampled_from(["", "  ", "\t", "\r"]),
        ),
        max_size=12,
    ),
    num_shards=st.integers(1, 4),
)
def test_count_equals_iteration_and_shards_partition(tmp_path, lines, num_shards):
    path = tmp_path / "h.jsonl"
    path.write_text("\n".join(lines), encoding="utf-8")
    source = JsonlSource({"train": path})
    records = read(source)
    assert source.num_records("train") == len(records) == sum(1 for x in lines if x.strip())
    shards = [read(source, shard_index=i, num_shards=num_shards) for i in range(num_shards)]
    assert sorted(r["_where"] for s in shards for r in s) == sorted(r["_where"] for r in records)


# --------------------------------------------------------------------------- bad input


def bad_file(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_malformed_json_names_file_and_line(tmp_path):
    path = bad_file(tmp_path, "bad.jsonl", b'{"a": 1}\n\n{"a": 2,}\n')
    with pytest.raises(RecordError, match=r"bad\.jsonl:3: malformed JSON") as info:
        read(JsonlSource({"train": path}))
    assert info.value.where == f"{path}:3"


def test_non_object_json_line(tmp_path):
    path = bad_file(tmp_path, "list.jsonl", b'{"a": 1}\n[1, 2]\n')
    with pytest.raises(RecordError, match=r"list\.jsonl:2: expected a JSON object, got list"):
        read(JsonlSource({"train": path}))


def test_bad_utf8_in_jsonl_names_the_field(tmp_path):
    path = bad_file(tmp_path, "enc.jsonl", b'{"a": "ok"}\n{"a": "ok", "text": "caf\xe9"}\n')
    with pytest.raises(RecordError) as info:
        read(JsonlSource({"train": path}))
    message = str(info.value)
    assert "enc.jsonl:2" in message and "'text'" in message and "not valid UTF-8" in message
    assert info.value.field == "text"


def test_bad_utf8_in_text_and_csv(tmp_path):
    text = bad_file(tmp_path, "enc.txt", b"fine\nbad \xff byte\n")
    with pytest.raises(RecordError, match=r"enc\.txt:2: field 'text': not valid UTF-8: byte 0xff"):
        read(TextLineSource({"train": text}))
    csv_path = bad_file(tmp_path, "enc.csv", b"a,b\n1,2\n3,x\xc3(\n")
    with pytest.raises(RecordError, match=r"enc\.csv:3: field 'b': not valid UTF-8"):
        read(CsvSource({"train": csv_path}))


def test_csv_row_with_wrong_number_of_fields(tmp_path):
    path = bad_file(tmp_path, "rows.csv", b"premise,hypothesis,label\np,h,0\np only\np,h,1,extra\n")
    with pytest.raises(RecordError, match=r"rows\.csv:3: field 'hypothesis': expected 3 fields"):
        read(CsvSource({"train": path}))
    context = ctx("skip")
    records = list(CsvSource({"train": path}).iter_records("train", context))
    assert [r["_where"] for r in records] == [f"{path}:2"]
    assert context.report.total_skipped() == 2
    assert any("rows.csv:4" in m and "got 4" in m for m in context.report.examples)


def test_skip_counts_every_bad_record_and_keeps_the_rest(tmp_path):
    path = bad_file(tmp_path, "mixed.jsonl", b'{"a": 1}\n{oops\n"str"\n{"a": "\xff"}\n{"a": 5}\n')
    context = ctx("skip")
    records = list(JsonlSource({"train": path}).iter_records("train", context))
    assert [r["a"] for r in records] == [1, 5]
    assert context.report.total_skipped() == 3
    assert [m.split(": ", 1)[0] for m in context.report.examples] == [
        f"{path}:2",
        f"{path}:3",
        f"{path}:4",
    ]
    # Sharded passes each report only their own bad records: together, each error once.
    reports = []
    for i in range(2):
        c = ctx("skip")
        list(JsonlSource({"train": path}).iter_records("train", c, shard_index=i, num_shards=2))
        reports.append(c.report.total_skipped())
    assert sum(reports) == 3


def test_function_source_rejects_non_dicts(tmp_path):
    def gen(split):
        yield {"x": 1}
        yield "nope"

    with pytest.raises(RecordError, match="gen:2: expected a dict, got str"):
        read(FunctionSource(gen, ["train"]))


# --------------------------------------------------------------------------- config


def test_source_from_config_resolves_relative_paths(tmp_path):
    (tmp_path / "data").mkdir()
    write_jsonl(tmp_path / "data" / "t.jsonl", ROWS[:2])
    (tmp_path / "data" / "t.tsv").write_text("a\tb\nx\ty\n", encoding="utf-8")
    jsonl = source_from_config({"type": "jsonl", "splits": {"train": "data/t.jsonl"}}, tmp_path)
    assert strip_where(read(jsonl)) == ROWS[:2]
    tsv = source_from_config({"type": "tsv", "splits": {"train": "data/*.tsv"}}, tmp_path)
    assert strip_where(read(tsv)) == [{"a": "x", "b": "y"}]
    text = source_from_config(
        {"type": "text", "field": "doc", "splits": {"train": ["data/t.jsonl"]}}, tmp_path
    )
    assert list(read(text)[0]) == ["doc", "_where"]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        (
            {"type": "jsonl", "splits": {"train": "missing.jsonl"}},
            r"src\.splits\.train: expected an existing file",
        ),
        ({"type": "jsonl", "splits": {"train": "*.none"}}, r"src\.splits\.train: no file matches"),
        ({"type": "jsonl", "splits": {"train": 3}}, r"src\.splits: split 'train': expected a path"),
        ({"type": "jsonl", "splits": ["train"]}, r"src: type 'jsonl' needs 'splits'"),
        (
            {"type": "jsonl", "splits": {"train": "x"}, "delimiter": ","},
            r"src: key\(s\) \['delimiter'\] do not apply",
        ),
        ({"type": "xml", "splits": {"train": "x"}}, r"src\.type: Input should be"),
        (
            {"type": "jsonl", "split": {"train": "x"}},
            r"src\.split: unknown key; expected one of: type, splits",
        ),
        ({"type": "hf"}, r"src: type 'hf' needs exactly one of 'path'"),
        ({"type": "hf", "path": "nowhere"}, r"src\.path: expected a datasets save_to_disk folder"),
    ],
)
def test_source_from_config_errors(tmp_path, spec, expected):
    with pytest.raises(ConfigError, match=expected):
        source_from_config(spec, tmp_path, key="src")


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "elsewhere"))
    assert record_counts.cache_dir() == tmp_path / "elsewhere"
