"""The pipeline: dedup across the corpus, the report adds up, I/O edge cases, resume, CLI, task."""

from __future__ import annotations

import gzip
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskmix.cleaning import pipeline
from taskmix.cleaning.corpus import corpus_task
from taskmix.cleaning.io import read_warc
from taskmix.cleaning.pipeline import clean_corpus
from taskmix.cleaning.presets import get_preset
from taskmix.cli.main import main
from taskmix.errors import ConfigError

from .helpers import GOOD, crash_stage1_on, page, read_texts, warc_bytes, write_jsonl

FAST = {"langdetect": False, "sentence_splitter": "regex"}
SPAN = "Shared sentence number one is here. Shared sentence number two follows. And the third shared one."


def test_span_dedup_keeps_the_first_occurrence_only(tmp_path):
    other = "\n".join(g.replace("the", "a") for g in GOOD)
    records = [{"text": page(SPAN)}, {"text": other + "\n" + SPAN}, {"text": page()}]
    stats = clean_corpus(
        [write_jsonl(tmp_path / "in.jsonl", records)],
        tmp_path / "out",
        get_preset("paper", **FAST),
        shards=2,
    )
    texts = read_texts(tmp_path / "out")
    assert sum(SPAN in t for t in texts) == 1
    assert page(SPAN) in texts and other in texts
    assert stats.pages_removed["dedup_spans"] == 1  # the third page: all its spans occur earlier
    assert stats.details["dedup_spans:sentences_removed"] == 3 + 6
    assert not stats.problems()


def test_line_dedup_and_recheck_in_tfds_preset(tmp_path):
    long_lines = [g + " Indeed it was so." for g in GOOD]
    records = [
        {"text": "\n".join(long_lines)},
        {"text": "\n".join(long_lines[:2] + ["A brand new line of text here."])},
    ]
    cfg = get_preset("tfds", **FAST)
    stats = clean_corpus([write_jsonl(tmp_path / "in.jsonl", records)], tmp_path / "out", cfg)
    assert read_texts(tmp_path / "out") == ["\n".join(long_lines)]
    assert stats.lines_removed["dedup_lines"] == 2
    assert stats.pages_removed["dedup_min_sentences"] == 1  # one sentence left < 3
    assert not stats.problems()


def test_output_does_not_depend_on_shards_and_parquet_output(tmp_path):
    import pyarrow.parquet as pq

    records = [{"text": page(SPAN, good=k), "url": f"http://x.org/{k}"} for k in range(2, 7)] * 2
    src = write_jsonl(tmp_path / "in.jsonl", records)
    cfg = get_preset("paper", **FAST)
    clean_corpus([src], tmp_path / "a", cfg, shards=1)
    clean_corpus([src], tmp_path / "b", cfg, shards=3, fmt="parquet")
    a = read_texts(tmp_path / "a")
    b = [
        t
        for f in sorted((tmp_path / "b").glob("*.parquet"))
        for t in pq.read_table(f)["text"].to_pylist()
    ]
    assert sorted(a) == sorted(b) and len(a) == 5


def test_minhash_removes_near_duplicates(tmp_path):
    base = page()
    near = base.replace("river", "lake")
    records = [
        {"text": base},
        {"text": near},
        {"text": "\n".join(g.upper() + " Okay then." for g in GOOD[::-1])},
    ]
    cfg = get_preset("paper", dedup="none", minhash=True, minhash_threshold=0.7, **FAST)
    stats = clean_corpus([write_jsonl(tmp_path / "in.jsonl", records)], tmp_path / "out", cfg)
    assert stats.pages_removed["near_duplicate"] == 1
    assert base in read_texts(tmp_path / "out")


lines_st = st.sampled_from(
    GOOD
    + [
        "Menu",
        "Click here...",
        "Enable javascript please now.",
        "x {y}.",
        "Short.",
        "",
        "Lorem ipsum dolor sit amet.",
        SPAN,
    ]
)


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    docs=st.lists(st.lists(lines_st, max_size=9), max_size=6),
    preset=st.sampled_from(["paper", "tfds"]),
)
def test_report_counts_add_up(tmp_path_factory, docs, preset):
    tmp = tmp_path_factory.mktemp("c")
    records = [{"text": "\n".join(d)} for d in docs] + ["{not json", {"text": "x" * 50, "url": 3}]
    stats = clean_corpus(
        [write_jsonl(tmp / "in.jsonl", records)],
        tmp / "out",
        get_preset(preset, max_page_chars=40, **FAST),
        shards=2,
    )
    assert stats.problems() == []
    assert stats.pages_in == len(records)
    assert stats.pages_out == len(read_texts(tmp / "out"))
    assert stats.lines_out == sum(len(t.splitlines()) for t in read_texts(tmp / "out"))
    saved = json.loads((tmp / "out" / "stats.json").read_text())
    assert saved["pages_in"] == stats.pages_in


def test_bad_inputs_are_counted_and_skipped(tmp_path):
    src = tmp_path / "in.jsonl"
    write_jsonl(src, [{"text": page()}, {"text": ""}, "nope", {"no_text": 1}, {"text": "y" * 500}])
    with open(src, "ab") as f:
        f.write(b'{"text": "bad \xff bytes"}\n')
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper", max_page_chars=400, **FAST))
    assert stats.pages_removed["input_empty"] == 1
    assert stats.pages_removed["input_bad_record"] == 2
    assert stats.pages_removed["input_too_long"] == 1
    assert stats.pages_removed["input_undecodable"] == 1
    assert stats.pages_out == 1 and not stats.problems()


def test_plain_text_blocks_and_gzip(tmp_path):
    src = tmp_path / "in.txt.gz"
    with gzip.open(src, "wt") as f:
        f.write(page() + "\n\n\n" + page(good=5) + "\n\nMenu\n")
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper", dedup="none", **FAST))
    assert stats.pages_in == 3 and stats.pages_out == 2


def test_warc_with_a_broken_record_is_read_past(tmp_path):
    texts = [page(), "BROKEN RECORD PAYLOAD HERE", page(good=5)]
    data, _ = warc_bytes(texts)
    # The middle record's header is garbage: warcio raises, the reader resyncs on the next one.
    j = data.index(b"WARC/1.", 1)
    data = data[:j] + b"\x00garbage\x00" + data[j + 7 :]
    src = tmp_path / "in.wet"
    src.write_bytes(data)
    docs = list(read_warc(src))
    assert [d.problem for d in docs].count("broken_record") == 1
    good = [d for d in docs if d.problem is None and d.text in (texts[0], texts[2])]
    assert len(good) == 2 and good[0].url == "http://site0.com/"
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper", **FAST))
    assert stats.pages_removed["input_broken_record"] == 1 and not stats.problems()


def test_resume_skips_finished_shards(tmp_path, monkeypatch):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": page(good=k)} for k in range(3, 7)])
    cfg = get_preset("paper", **FAST)
    calls: list[int] = []
    real = crash_stage1_on(monkeypatch, 2, calls)
    with pytest.raises(RuntimeError):
        clean_corpus([src], tmp_path / "out", cfg, shards=3)
    assert not list((tmp_path / "out" / "_work").glob("stage1-00002*"))  # nothing half-written
    with pytest.raises(ConfigError, match="--resume"):
        clean_corpus([src], tmp_path / "out", cfg, shards=3)
    with pytest.raises(ConfigError, match="different"):
        clean_corpus([src], tmp_path / "out", cfg, shards=2, resume=True)
    calls.clear()
    monkeypatch.setattr(pipeline, "run_stage1", lambda job: calls.append(job.shard) or real(job))
    stats = clean_corpus([src], tmp_path / "out", cfg, shards=3, resume=True)
    assert calls == [2]  # shards 0 and 1 were committed before the crash
    assert stats.pages_in == 4 and not stats.problems()
    assert (tmp_path / "out" / "_SUCCESS").exists()


def test_cli_clean_and_early_errors(tmp_path, capsys):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": page()}, {"text": "Menu"}])
    assert main(["clean", str(src), "--out", str(tmp_path / "o1"), "--preset", "nope"]) == 2
    assert "unknown cleaning preset 'nope'" in capsys.readouterr().err
    assert (
        main(
            [
                "clean",
                str(src),
                "--out",
                str(tmp_path / "o2"),
                "--bad-words",
                str(tmp_path / "missing"),
            ]
        )
        == 2
    )
    assert "bad-words file not found" in capsys.readouterr().err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
    rc = main(
        [
            "clean",
            str(src),
            "--out",
            str(tmp_path / "o3"),
            "--no-langdetect",
            "--workers",
            "1",
            "--stats",
            str(tmp_path / "s.json"),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "min_sentences" in out and "(out)" in out
    assert json.loads((tmp_path / "s.json").read_text())["pages_out"] == 1


def test_multiprocessing_matches_one_process(tmp_path):
    records = [{"text": page(SPAN, good=k)} for k in range(3, 7)]
    src = write_jsonl(tmp_path / "in.jsonl", records)
    cfg = get_preset("paper", **FAST)
    one = clean_corpus([src], tmp_path / "a", cfg, shards=2, workers=1)
    two = clean_corpus([src], tmp_path / "b", cfg, shards=2, workers=2)
    assert one.as_dict() == two.as_dict()
    assert read_texts(tmp_path / "a") == read_texts(tmp_path / "b")


def test_default_preset_with_punkt_and_langdetect(tmp_path):
    german = "\n".join(["Der schnelle braune Fuchs springt über den faulen Hund heute."] * 6)
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": page()}, {"text": german}])
    stats = clean_corpus([src], tmp_path / "out", get_preset("paper"))
    assert stats.pages_removed["language"] == 1 and stats.pages_out == 1


def test_corpus_task_tokenizes_without_eos(tmp_path, byte_vocab):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": page()}, {"text": page(good=5)}])
    clean_corpus([src], tmp_path / "out", get_preset("paper", dedup="none", **FAST))
    task = corpus_task("c4_tiny", tmp_path / "out", byte_vocab)
    examples = list(task.get_dataset("train"))
    assert task.num_input_examples("train") == 2 and len(examples) == 2
    ex = examples[0]
    assert ex["targets_pretokenized"] == page()
    assert ex["targets"].tolist() == byte_vocab.encode(page())  # no EOS appended
    assert "inputs" not in ex
    with pytest.raises(ConfigError, match="corpus path"):
        corpus_task("c4_tiny", tmp_path / "missing", byte_vocab)
