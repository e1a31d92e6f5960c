"""Our rules as datatrove steps, run by LocalPipelineExecutor: same pages as the local pipeline."""

from __future__ import annotations

import json

import pytest

from taskmix.cleaning.pipeline import clean_corpus
from taskmix.cleaning.presets import get_preset

from .helpers import (
    GOOD,
    numbered_page,
    page,
    read_texts,
    warc_bytes,
    write_jsonl,
    write_jsonl_gz,
)

pytest.importorskip("datatrove")
pytest.importorskip("orjson")

SPAN = "Shared sentence number one is here. Shared sentence number two follows. And the third shared one."


@pytest.mark.parametrize("preset", ["paper", "tfds"])
def test_datatrove_matches_local_pipeline(tmp_path, preset):
    from taskmix.cleaning.distributed import run_datatrove

    inp = tmp_path / "in"
    inp.mkdir()
    long = [g + " Indeed it was so." for g in GOOD]
    write_jsonl(
        inp / "a.jsonl",
        [
            {"text": page(SPAN), "url": "http://a.com/1"},
            {"text": "Menu\nHome"},
            {"text": "\n".join(long)},
        ],
    )
    write_jsonl(
        inp / "b.jsonl",
        [
            {"text": page(good=4) + "\n" + SPAN},
            {"text": "\n".join(long[:3] + ["A new line that is long enough."])},
            {"text": "Bad { page.\n" + page()},
        ],
    )
    cfg = get_preset(preset, langdetect=False, sentence_splitter="regex")
    local = clean_corpus([inp], tmp_path / "local", cfg, shards=2)
    dt = run_datatrove(inp, tmp_path / "dt", cfg, tasks=2)
    assert sorted(read_texts(tmp_path / "dt")) == sorted(read_texts(tmp_path / "local"))
    assert dt.as_dict() == local.as_dict()
    assert local.pages_out >= 2 and not dt.problems()


def test_datatrove_reads_every_input_kind_and_counts_bad_records(tmp_path):
    """gz, text, WARC and a subfolder go through taskmix's readers; bad lines reach the report."""
    import gzip

    from taskmix.cleaning.distributed import run_datatrove

    inp = tmp_path / "in"
    (inp / "sub").mkdir(parents=True)
    with open(inp / "a.jsonl", "wb") as f:
        f.write(json.dumps({"text": numbered_page(0), "url": "http://a.com/"}).encode() + b"\n")
        f.write(b"{not json\n")  # datatrove's own reader would only log a warning
        f.write(b'["a list, not an object"]\n')  # ... and crash here
        f.write(b'{"text": "bad \xff bytes"}\n')  # ... and drop the rest of the file
        f.write(json.dumps({"text": numbered_page(1)}).encode() + b"\n")
    write_jsonl_gz(inp / "sub" / "b.jsonl.gz", [{"text": numbered_page(2)}, {"text": page()}])
    (inp / "c.txt").write_text(numbered_page(3) + "\n\n" + page(SPAN) + "\n\nMenu\n")
    data, _ = warc_bytes([numbered_page(4), numbered_page(0)], gz=True)
    (inp / "sub" / "d.warc.gz").write_bytes(data)
    with gzip.open(inp / "e.txt.gz", "wt") as f:
        f.write("\n\n".join(numbered_page(i) for i in range(10, 200)))
    (inp / "e.txt.gz").write_bytes((inp / "e.txt.gz").read_bytes()[:-40])  # truncated

    cfg = get_preset("paper", langdetect=False, sentence_splitter="regex")
    local = clean_corpus([inp], tmp_path / "local", cfg, shards=3)
    dt = run_datatrove(inp, tmp_path / "dt", cfg, tasks=3)
    assert sorted(read_texts(tmp_path / "dt")) == sorted(read_texts(tmp_path / "local"))
    assert dt.as_dict() == local.as_dict() and not dt.problems()
    assert dt.pages_removed["input_bad_record"] == 2
    assert dt.pages_removed["input_undecodable"] == 1
    assert dt.pages_removed["input_broken_file"] == 1
    texts = read_texts(tmp_path / "dt")
    assert numbered_page(1) in texts  # the line after the undecodable one
    assert numbered_page(2) in texts and numbered_page(3) in texts and numbered_page(4) in texts
