"""The pre-training data experiment and the raw, web-like corpus it cleans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taskmix.cleaning import clean_corpus, get_preset
from taskmix.cleaning.corpus import corpus_files as cleaned_files
from taskmix.cleaning.presets import load_clean_config
from taskmix.default_data import corpus_files, ensure_data
from taskmix.default_data.raw_corpus import (
    CODE_LINES,
    CODE_PROSE,
    FOREIGN,
    JAVASCRIPT,
    LOREM,
    NAVIGATION,
    RAW_CLEAN_CONFIG,
    build_raw_corpus,
    compare_corpora,
    ensure_raw_corpus,
)
from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Context, Outcome
from taskmix.recipes.experiments.pretraining_data import (
    PretrainingData,
    corpus_of,
    truncation,
)
from taskmix.recipes.experiments.runner import plan_experiment, run_experiment
from tests.recipes.experiments.conftest import quick_settings

JUNK = [*NAVIGATION, *JAVASCRIPT, *CODE_LINES, *CODE_PROSE, *LOREM]
JUNK += [s for sentences in FOREIGN.values() for s in sentences]


def _clean_docs(n: int) -> list[str]:
    path = corpus_files(ensure_data(0))["train"]
    return [json.loads(line)["text"] for line in path.read_text().splitlines()[:n]]


def test_raw_corpus_is_deterministic_and_holds_every_kind_of_junk():
    docs = _clean_docs(400)
    pages = build_raw_corpus(docs, 0, "train")
    assert pages == build_raw_corpus(docs, 0, "train")
    assert pages != build_raw_corpus(docs, 1, "train")
    kinds = {p["kind"] for p in pages}
    assert kinds == {"article", "foreign", "code", "lorem", "navigation", "mirror"}
    articles = [p["text"] for p in pages if p["kind"] == "article"]
    assert len(articles) == len(docs)
    assert all(doc in page.split("\n") for doc, page in zip(docs, articles, strict=True))


def test_cleaning_the_raw_corpus_drops_the_junk_and_gives_back_the_clean_one(tmp_path):
    docs = _clean_docs(400)
    raw = tmp_path / "raw.jsonl"
    raw.write_text("".join(json.dumps(p) + "\n" for p in build_raw_corpus(docs, 0, "train")))
    config = dict(RAW_CLEAN_CONFIG)
    stats = clean_corpus([raw], tmp_path / "out", get_preset(config.pop("preset"), **config))
    cleaned = [
        json.loads(line)["text"]
        for f in cleaned_files(tmp_path / "out")
        for line in f.read_text().splitlines()
    ]
    text = "\n".join(cleaned)
    assert not [junk for junk in JUNK if junk in text]
    for rule in ("terminal_punct", "javascript", "curly_brace", "lorem_ipsum", "language"):
        assert stats.lines_removed[rule] > 0, rule
    assert stats.pages_removed["dedup_spans"] > 0  # mirrored pages
    close = compare_corpora(cleaned, docs)
    assert close["recall"] > 0.85 and close["precision"] > 0.9, close


def test_raw_corpus_is_written_once_beside_the_clean_one():
    root = ensure_raw_corpus(0)
    assert root.parent == ensure_data(0)
    first = (root / "train.jsonl").stat().st_mtime_ns
    assert ensure_raw_corpus(0) == root
    assert (root / "train.jsonl").stat().st_mtime_ns == first
    assert (root / "validation.jsonl").exists()


def test_truncation_takes_the_shortest_prefix():
    assert truncation([10, 10, 10], seen=60, repeats=4) == 2  # 15 tokens
    assert truncation([10, 10, 10], seen=60, repeats=6) == 1
    assert truncation([10, 10, 10], seen=60, repeats=1) == 3  # the corpus is too small
    assert truncation([10, 10, 10], seen=60, repeats=1000) == 1


GRID = {"corpora": ["clean", "raw"], "repeats": [1, 64], "input_length": [32]}


def test_runs_end_to_end(quick, tmp_path):
    experiment, settings = quick("pretraining-data", budget=4, families=["topic"], grid=GRID)
    result = run_experiment("pretraining-data", tmp_path, settings, plots=True)
    rows = {row[0]: dict(zip(result["columns"], row, strict=True)) for row in result["rows"]}
    assert list(rows) == ["clean", "raw", "repeat1", "repeat64"]
    data = result["data"]
    # 4 steps x batch 4 x the raw tokens of one 32-token span-corruption example
    seen = data["clean"]["seen"]
    assert seen % 16 == 0 and 16 * 30 < seen < 16 * 40
    assert data["repeat1"]["tokens"] >= seen > data["repeat1"]["tokens"] - 200
    assert data["repeat64"]["docs"] == 1
    assert rows["raw"]["tokens"] > rows["clean"]["tokens"]
    assert rows["repeat1"]["times seen"] == round(seen / data["repeat1"]["tokens"], 3)
    corpus = tmp_path / "corpora" / "repeat1.jsonl"
    assert len(corpus.read_text().splitlines()) == data["repeat1"]["docs"]
    tasks = json.loads((tmp_path / "tasks.yaml").read_text())
    entries = {e["name"]: e for e in tasks["pretraining"]}
    assert entries["corpus_repeat1"]["corpus"] == [str(corpus)]
    assert entries["corpus_raw"]["corpus"] == [str(ensure_raw_corpus(0) / "train.jsonl")]
    for arm in rows:
        finetune = yaml.safe_load((tmp_path / "configs" / f"finetune_{arm}.yaml").read_text())
        pretrain = yaml.safe_load((tmp_path / "configs" / f"pretrain_{arm}.yaml").read_text())
        assert finetune["model"]["init_from"] == str(tmp_path / "runs" / f"pretrain_{arm}")
        assert pretrain["steps"] == 4 and finetune["steps"] == 2
        assert rows[arm]["pretrain loss"] is not None
    assert (tmp_path / "pretraining_data.png").exists()


def test_a_repetition_the_corpus_cannot_reach_is_the_clean_arm(default_tasks, tmp_path):
    settings = quick_settings(budget=5000, families=["topic"], grid=GRID)
    plan = plan_experiment(PretrainingData(), settings, tmp_path)
    names = [run.name for run in plan.runs]
    assert "pretrain_repeat1" not in names and "pretrain_repeat64" in names
    corpora = PretrainingData().corpora(plan.ctx)
    assert corpora["clean"]["repeats"] == 1 and corpora["clean"]["times_seen"] > 1


def test_summary_arithmetic(default_tasks, tmp_path):
    experiment = PretrainingData()
    settings = quick_settings(budget=4, families=["topic"], grid={**GRID, "corpora": ["clean"]})
    ctx = Context(experiment, settings, tmp_path)
    plan_experiment(experiment, settings, tmp_path)
    outcomes = {
        "pretrain_clean": Outcome("pretrain_clean", "done", final_loss=4.0),
        "finetune_clean": Outcome(
            "finetune_clean", "done", report={"best": {"topic": {"value": 30.0}}}
        ),
        "pretrain_repeat1": Outcome("pretrain_repeat1", "done", final_loss=2.5),
        "finetune_repeat1": Outcome("finetune_repeat1", "failed"),
    }
    summary = experiment.summarize(ctx, outcomes)
    rows = {row[0]: dict(zip(summary.columns, row, strict=True)) for row in summary.rows}
    assert rows["clean"]["average"] == 30.0 and rows["clean"]["pretrain loss"] == 4.0
    assert rows["repeat1"]["average"] is None and rows["repeat1"]["pretrain loss"] == 2.5
    assert rows["repeat64"]["pretrain loss"] is None
    assert (
        summary.data["repeat1"]["times_seen"]
        == summary.data["repeat1"]["seen"] / (summary.data["repeat1"]["tokens"])
    )


def test_the_example_cleaning_file_is_the_raw_corpus_config():
    path = Path(__file__).parents[3] / "examples" / "experiments" / "clean_raw_corpus.yaml"
    preset, overrides = load_clean_config(path)
    config = dict(RAW_CLEAN_CONFIG)
    assert preset == config.pop("preset")
    assert get_preset(preset, **overrides) == get_preset(preset, **config)


def test_an_unknown_corpus_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown corpus 'web'"):
        corpus_of("web")
