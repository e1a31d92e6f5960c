"""The embedded default data: deterministic generation, the task catalogue, registration."""

from __future__ import annotations

import json
import math
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data import postprocessors as post
from taskmix.data.vocabulary import EOS_ID
from taskmix.default_data import (
    CORPUS_TASK,
    DEFAULT_CAP,
    FAMILIES,
    SPECS,
    default_tasks,
    default_vocabulary,
    register_default_tasks,
)
from taskmix.default_data import generate as gen
from taskmix.default_data.docs import render_markdown
from taskmix.default_data.spec import SPLITS
from taskmix.default_data.tasks_facts import to_zarnic
from taskmix.errors import TaskmixError
from taskmix.metrics.chance import chance_scores

METRICS = {
    "accuracy", "f1", "macro_f1", "mcc", "pearson", "spearman", "squad_em", "squad_f1",
    "exact_match", "bleu", "rouge1", "rouge2", "rougeLsum",
}  # fmt: skip
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.usefixtures("default_tasks")


@pytest.fixture(scope="session")
def cache(tmp_path_factory):
    """One generation (and one tokenizer training) for the whole session, in a temp cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("TASKMIX_CACHE", str(tmp_path_factory.mktemp("taskmix_cache")))
    yield gen.ensure_data(0)
    mp.undo()


@pytest.fixture(scope="session")
def tasks(cache):
    return {t.name: t for t in default_tasks(0)}


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def files_of(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "spm" not in p.parts
    }


# --- generation --------------------------------------------------------------------------------


def test_generation_is_deterministic_and_depends_on_the_seed(cache, tmp_path):
    gen.generate(tmp_path / "again", 0)
    first, again = files_of(cache), files_of(tmp_path / "again")
    assert len(first) == 2 + 2 + 3 * len(SPECS)  # manifest, world, corpus x2, tasks x3
    assert first == again
    gen.generate(tmp_path / "other", 1)
    other = files_of(tmp_path / "other")
    assert other.keys() == first.keys()
    differing = [name for name in first if first[name] != other[name]]
    assert "world.json" in differing and "corpus/train.jsonl" in differing
    assert len(differing) > len(first) // 2


def test_ensure_data_reuses_complete_data_and_rejects_incomplete(cache, monkeypatch, tmp_path):
    stamp = (cache / gen.MANIFEST).stat().st_mtime_ns
    assert gen.ensure_data(0) == cache
    assert (cache / gen.MANIFEST).stat().st_mtime_ns == stamp
    assert gen.data_dir(0) == cache and cache.name == f"v{gen.VERSION}-seed0"

    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path))
    half = gen.data_dir(3)
    (half / "tasks").mkdir(parents=True)
    with pytest.raises(TaskmixError, match="no manifest.json"):
        gen.ensure_data(3)
    with pytest.raises(ValueError, match="seed"):
        gen.data_dir(-1)


def test_interrupted_generation_leaves_nothing_that_looks_complete(monkeypatch, tmp_path):
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path))

    def broken_task_entry(spec, splits):
        raise KeyboardInterrupt  # as if the process were stopped mid-generation

    monkeypatch.setattr(gen, "_task_entry", broken_task_entry)
    with pytest.raises(KeyboardInterrupt):
        gen.ensure_data(5)
    parent = gen.data_dir(5).parent
    assert not gen.data_dir(5).exists()
    assert list(parent.iterdir()) == []  # the temporary folder is gone too


# --- the catalogue -----------------------------------------------------------------------------


def test_catalogue_covers_the_families_and_keeps_two_tasks_out(cache):
    manifest = json.loads((cache / gen.MANIFEST).read_text())
    in_mixture = [s for s in SPECS if s.in_mixture]
    assert len(in_mixture) >= 24
    per_family = Counter(s.family for s in in_mixture)
    assert set(per_family) == set(FAMILIES) and min(per_family.values()) >= 2
    out = {s.name: s for s in SPECS if not s.in_mixture}
    assert out["world_stsb"].postprocessor is post.parse_regression
    assert set(out["world_stsb"].metrics) == {"pearson", "spearman"}
    assert out["translate_en_zarnic"].metrics == ("bleu",)
    train_sizes = [manifest["tasks"][s.name]["sizes"]["train"] for s in SPECS]
    assert max(train_sizes) >= 100 * min(train_sizes)
    for spec in SPECS:
        entry = manifest["tasks"][spec.name]
        assert spec.metrics and set(spec.metrics) <= METRICS, spec.name
        assert set(entry["chance"]) == set(spec.metrics), spec.name  # sacrebleu is installed
        assert all(0 <= v <= 100 for v in entry["chance"].values()), spec.name
        assert spec.description and entry["example"]["inputs"] and entry["example"]["targets"]
        assert all(entry["sizes"][s] > 0 for s in SPLITS)


def test_every_task_yields_tokenized_examples_on_every_split(tasks):
    assert len(tasks) == len(SPECS) + 1
    for name, task in tasks.items():
        for split in task.splits:
            examples = [ex for _, ex in zip(range(3), task.get_dataset(split), strict=False)]
            assert len(examples) == 3, (name, split)
            for ex in examples:
                keys = ("targets",) if name == CORPUS_TASK else ("inputs", "targets")
                for key in keys:
                    ids = ex[key]
                    assert ids.dtype == np.int32 and len(ids) >= 2, (name, split, key)
                    assert ids[-1] == EOS_ID and EOS_ID not in ids[:-1].tolist()
                    assert ex[f"{key}_pretokenized"].strip()


def test_targets_are_short_and_inputs_mostly_short(tasks):
    vocab = default_vocabulary(0)
    for spec in SPECS:
        examples = list(tasks[spec.name].get_dataset("validation", pretokenized=True))
        input_lengths = sorted(len(vocab.encode(ex["inputs"])) for ex in examples[:50])
        assert input_lengths[len(input_lengths) // 2] < 200, spec.name
        assert max(len(ex["targets"].split()) for ex in examples) <= 25, spec.name


def test_splits_do_not_share_inputs(cache):
    for spec in SPECS:
        inputs = {
            s: {spec.format(r)["inputs"] for r in read_jsonl(gen.task_files(cache, spec.name)[s])}
            for s in SPLITS
        }
        assert not inputs["train"] & inputs["test"], spec.name
        assert not inputs["train"] & inputs["validation"], spec.name


def test_label_tasks_only_use_their_labels_and_chance_is_the_majority(cache):
    for spec in SPECS:
        if not spec.labels:
            continue
        records = {s: read_jsonl(gen.task_files(cache, spec.name)[s]) for s in SPLITS}
        targets = {s: [r[spec.target_key] for r in records[s]] for s in SPLITS}
        assert set(targets["train"]) == set(spec.labels), spec.name
        counts = Counter(targets["train"])
        majority = min(t for t in counts if counts[t] == max(counts.values()))  # ties: a-z first
        expected = 100 * targets["test"].count(majority) / len(targets["test"])
        manifest = json.loads((cache / gen.MANIFEST).read_text())
        chance = manifest["tasks"][spec.name]["chance"]
        assert chance.get("accuracy", expected) == pytest.approx(expected, abs=0.01)


def test_closed_book_answers_are_stated_in_the_corpus_not_in_the_question(cache):
    docs = [r["text"] for r in read_jsonl(gen.corpus_files(cache)["train"])]
    for name in ("cbqa_places", "cbqa_people", "cbqa_things"):
        for split in SPLITS:
            for r in read_jsonl(gen.task_files(cache, name)[split]):
                if " or " not in r["question"]:  # "small, medium or large?" lists the options
                    assert r["answer"] not in r["question"]
                assert any(r["subject"] in d and r["answer"] in d for d in docs), r


def test_regression_targets_are_binned_scores(cache):
    for split in SPLITS:
        for r in read_jsonl(gen.task_files(cache, "world_stsb")[split]):
            score = post.parse_regression(r["score"], default=-1.0)
            assert 0.0 <= score <= 5.0 and r["score"] == f"{score:.1f}"
            assert round(score * 5) == pytest.approx(score * 5)


def test_translation_drops_articles_maps_words_and_puts_verbs_last():
    lexicon = {"capital": "ak", "of": "ul", "is": "esh"}
    assert to_zarnic("The capital of Marandi is Velora.", lexicon) == "ak ul Marandi Velora esh."
    # capitalised words are names, even when a template word is spelled the same way
    lexicon = {"works": "om", "makes": "ta", "tools": "ru"}
    assert to_zarnic("Rindra Works makes tools.", lexicon) == "Rindra Works ru ta."


# --- registration, vocabulary, docs ------------------------------------------------------------


def test_registration_adds_tasks_and_capped_mixtures(cache):
    from taskmix.data.registry import MixtureRegistry, TaskRegistry

    names = set(TaskRegistry.names())
    assert {s.name for s in SPECS} | {CORPUS_TASK} <= names
    register_default_tasks()  # idempotent: no "already registered" error
    default = MixtureRegistry.get("default")
    members = set(default.component_names)
    assert members == {s.name for s in SPECS if s.in_mixture}
    rates = default.rates("train")
    assert sum(rates.values()) == pytest.approx(1.0)
    assert rates["world_nli"] == pytest.approx(rates["topic"])  # 5000 capped to 2000 = 2000
    assert rates["world_nli"] == pytest.approx(DEFAULT_CAP * rates["world_cb"] / 40)
    for family in FAMILIES:
        mixture = MixtureRegistry.get(f"family_{family}")
        assert {TaskRegistry.get(n).family for n in mixture.component_names} == {family}
    task = TaskRegistry.get("world_cb")
    assert task.metadata["chance"]["accuracy"] > 0 and task.metadata["labels"]


def test_default_vocabulary_is_trained_once_and_round_trips(tasks, cache):
    vocab = default_vocabulary(0)
    assert vocab is default_vocabulary(0)
    text = next(iter(tasks["world_squad"].get_dataset("test", pretokenized=True)))["inputs"]
    assert vocab.decode(vocab.encode(text)) == text
    assert (cache / "spm" / "default.model").is_file()
    assert vocab.vocab_size == vocab.base_vocab_size + 100
    assert vocab.sentinel_id(0) == vocab.vocab_size - 1


def test_docs_page_matches_the_generated_data(cache):
    text = render_markdown(0)
    for spec in SPECS:
        assert f"`{spec.name}`" in text
    page = REPO / "docs" / "default_data.md"
    assert page.read_text(encoding="utf-8") == text, (
        "docs/default_data.md is stale: python -m taskmix.default_data.docs docs/default_data.md"
    )


# --- postprocessors and chance -----------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.text(), st.none(), st.binary(), st.integers(), st.floats()))
def test_postprocessors_never_crash_on_junk(junk):
    assert isinstance(post.strip(junk, {}), str)
    assert isinstance(post.normalize_whitespace(junk), str)
    value = post.parse_regression(junk, {})
    assert isinstance(value, float) and math.isfinite(value)


def test_postprocessor_values():
    assert post.strip("  entailment \n", {}) == "entailment"
    assert post.normalize_whitespace(" filter  category=toy\n colour=red ") == (
        "filter category=toy colour=red"
    )
    assert post.parse_regression(" 3.8 ") == 3.8
    assert post.parse_regression("nan") == 0.0 and post.parse_regression("high", default=2.5) == 2.5


def test_chance_scores_of_a_constant_predictor():
    scores = chance_scores(
        ("accuracy", "f1", "macro_f1", "mcc", "squad_em", "squad_f1"),
        ["yes", "yes", "no"],
        ["yes", "no", "no", "no"],
        positive_label="yes",
    )
    assert scores["accuracy"] == 25.0 and scores["squad_em"] == 25.0
    assert scores["f1"] == pytest.approx(100 * 2 / 5)  # tp 1, fp 3, fn 0
    assert scores["macro_f1"] == pytest.approx(100 * (2 / 5 + 0) / 2)
    assert scores["mcc"] == 0.0
