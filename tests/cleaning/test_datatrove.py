"""Our rules as datatrove steps, run by LocalPipelineExecutor: same pages as the local pipeline."""

from __future__ import annotations

import pytest

from taskmix.cleaning.pipeline import clean_corpus
from taskmix.cleaning.presets import get_preset

from .helpers import GOOD, page, read_texts, write_jsonl

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
