"""YAML tasks and mixtures: twins of Python tasks, safe templates, errors naming file + key."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from taskmix.catalog.yaml_files import load_yaml
from taskmix.data.declarative import Template, TemplateFormatter
from taskmix.data.formatting import bin_regression, format_fields, label_word
from taskmix.data.registry import Registry
from taskmix.data.report import ErrorReport
from taskmix.data.sources import CsvSource, JsonlSource
from taskmix.data.task import Feature, Task, map_examples, tokenize
from taskmix.data.vocabulary import ByteVocabulary, LazyVocabulary
from taskmix.errors import ConfigError, RecordError

WORDS = ["entailment", "neutral", "contradiction"]


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TASKMIX_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def registries():
    return Registry("task"), Registry("mixture")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    for split, n in (("train", 6), ("dev", 3)):
        rows = [
            {"premise": f"{split} premise {i}", "hypothesis": f"hyp {i}", "label": i % 3}
            for i in range(n)
        ]
        (data / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (data / "sts.csv").write_text(
        "sentence1,sentence2,score\na,b,3.77\nc,d,0.05\ne,f,4.9\n", encoding="utf-8"
    )
    return data


NLI_TASK = {
    "name": "my_nli",
    "family": "nli",
    "source": {
        "type": "jsonl",
        "splits": {"train": "data/train.jsonl", "validation": "data/dev.jsonl"},
    },
    "inputs": "nli premise: {premise} hypothesis: {hypothesis}",
    "targets": "{label}",
    "labels": {"field": "label", "words": WORDS},
    "metrics": ["accuracy"],
    "vocabulary": "byte",
}
STS_TASK = {
    "name": "my_sts",
    "source": {"type": "csv", "splits": {"train": "data/sts.csv"}},
    "inputs": "stsb sentence1: {sentence1} sentence2: {sentence2}",
    "targets": "{score}",
    "regression": {"field": "score", "step": 0.2},
    "vocabulary": "byte",
}


def write_config(tmp_path: Path, config: dict | str, name: str = "tasks.yaml") -> Path:
    path = tmp_path / name
    path.write_text(config if isinstance(config, str) else yaml.safe_dump(config))
    return path


def python_nli(data_dir: Path) -> Task:
    """The hand-written twin of NLI_TASK."""

    def to_text(record):
        return {
            "inputs": format_fields("nli", record, ["premise", "hypothesis"]),
            "targets": label_word(record, "label", WORDS),
            "_where": record["_where"],
        }

    vocab = ByteVocabulary()
    return Task(
        name="py_nli",
        source=JsonlSource(
            {"train": data_dir / "train.jsonl", "validation": data_dir / "dev.jsonl"}
        ),
        preprocessors=[map_examples(to_text), tokenize],
        output_features={"inputs": Feature(vocab), "targets": Feature(vocab)},
    )


def as_comparable(example: dict) -> dict:
    return {k: v.tolist() if isinstance(v, np.ndarray) else v for k, v in example.items()}


def test_yaml_task_equals_its_python_twin(tmp_path, data_dir, registries):
    path = write_config(tmp_path, {"tasks": [NLI_TASK]})
    tasks, mixtures = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    assert mixtures == [] and registries[0].get("my_nli") is tasks[0]
    task = tasks[0]
    twin = python_nli(data_dir)
    assert task.splits == twin.splits == ["train", "validation"]
    for split in task.splits:
        ours = [as_comparable(e) for e in task.get_dataset(split)]
        theirs = [as_comparable(e) for e in twin.get_dataset(split)]
        assert ours == theirs and len(ours) == task.num_input_examples(split)
    first = next(task.get_dataset("train"))
    assert first["inputs_pretokenized"] == "nli premise: train premise 0 hypothesis: hyp 0"
    assert first["targets_pretokenized"] == "entailment"
    assert first["targets"][-1] == 1  # EOS
    assert task.family == "nli" and list(task.metric_names) == ["accuracy"]
    assert task.postprocess("  neutral \n") == "neutral"
    assert task.metadata["config_file"] == str(path.resolve())


def test_regression_task_bins_scores_and_parses_predictions(tmp_path, data_dir, registries):
    path = write_config(tmp_path, {"tasks": [STS_TASK]})
    (task,), _ = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    examples = list(task.get_dataset("train"))
    assert [e["targets_pretokenized"] for e in examples] == ["3.8", "0.0", "4.8"]
    assert [e["targets_pretokenized"] for e in examples] == [
        bin_regression(s) for s in (3.77, 0.05, 4.9)
    ]
    assert examples[0]["inputs_pretokenized"] == "stsb sentence1: a sentence2: b"
    assert task.postprocess("3.8") == pytest.approx(3.8)
    assert task.postprocess("three") == 0.0
    assert isinstance(task.source, CsvSource)


def test_missing_field_and_empty_target_name_file_line_field(tmp_path, data_dir, registries):
    (data_dir / "holes.jsonl").write_text(
        '{"premise": "p", "hypothesis": "h", "label": 0}\n'
        '{"premise": "p", "label": 1}\n'
        '{"premise": "p", "hypothesis": "h", "label": 2, "note": " "}\n'
    )
    task = {
        **NLI_TASK,
        "name": "holes",
        "source": {"type": "jsonl", "splits": {"train": "data/holes.jsonl"}},
    }
    notes = {k: v for k, v in task.items() if k != "labels"}
    notes.update(name="notes", targets="{note}")
    path = write_config(tmp_path, {"tasks": [task, notes]})
    (holes, notes_task), _ = load_yaml(
        path, task_registry=registries[0], mixture_registry=registries[1]
    )
    with pytest.raises(RecordError, match=r"holes\.jsonl:2: field 'hypothesis': missing"):
        list(holes.get_dataset("train"))
    with pytest.raises(RecordError, match=r"holes\.jsonl:1: field 'note': missing"):
        list(notes_task.get_dataset("train"))

    skipping = dataclasses.replace(holes, on_error="skip")
    report = ErrorReport()
    kept = list(skipping.get_dataset("train", report=report))
    assert len(kept) == 2 and report.skipped == {"missing": 1}

    (data_dir / "empty.jsonl").write_text('{"note": "  ", "premise": "p"}\n')
    empty = {
        **notes,
        "name": "empty",
        "source": {"type": "jsonl", "splits": {"train": "data/empty.jsonl"}},
    }
    empty["inputs"] = "x {premise}"
    path = write_config(tmp_path, {"tasks": [empty]}, "empty.yaml")
    (task,), _ = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    # The error names the record's field that is blank, not the template's output key.
    with pytest.raises(RecordError, match=r"empty\.jsonl:1: field 'note': empty") as info:
        list(task.get_dataset("train"))
    assert info.value.field == "note" and info.value.reason == "empty"


def test_template_renders_only_plain_fields():
    template = Template.parse("{{literal}} {a}-{b}")
    assert template.fields == ["a", "b"]
    assert template.render({"a": 1, "b": "x"}) == "{literal} 1-x"
    with pytest.raises(RecordError, match="field 'a': expected text or a number"):
        template.render({"a": ["list"], "b": "x"})
    for unsafe in ("{a.__class__}", "{a[0]}", "{a!r}", "{a:>10}", "{}", "{ a }", "{0.real}"):
        with pytest.raises(ValueError, match="unsafe placeholder"):
            Template.parse(unsafe)


def test_an_empty_output_names_the_blank_record_field():
    formatter = TemplateFormatter(Template.parse("x {a}"), Template.parse("{b}"))
    with pytest.raises(RecordError, match=r"f:7: field 'b': empty") as info:
        formatter({"a": "ok", "b": " ", "_where": "f:7"})
    assert (info.value.field, info.value.reason) == ("b", "empty")
    both = TemplateFormatter(Template.parse("x"), Template.parse("{a} {b}"))
    with pytest.raises(RecordError, match=r"f:8: field 'a': empty"):  # the first blank one
        both({"a": "", "b": " ", "_where": "f:8"})
    assert both({"a": "", "b": "yes"})["targets"] == " yes"  # one blank field is fine


# --------------------------------------------------------------------------- config errors


def load_error(tmp_path, config, registries) -> str:
    path = write_config(tmp_path, config, "bad.yaml")
    with pytest.raises(ConfigError) as info:
        load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    message = str(info.value)
    assert str(path) in message  # every error names the file
    return message


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            {"inputz": "x"},
            r"tasks\[1\]\.inputz: unknown key; expected one of: name, family, source",
        ),
        ({"metrics": "accuracy"}, r"tasks\[1\]\.metrics: Input should be a valid list"),
        ({"on_error": "ignore"}, r"tasks\[1\]\.on_error: Input should be 'raise' or 'skip'"),
        (
            {"inputs": "nli {premise.__class__}"},
            r"tasks\[1\]\.inputs: unsafe placeholder \{premise\.__class__\}",
        ),
        ({"targets": "{label!r}"}, r"tasks\[1\]\.targets: unsafe placeholder"),
        ({"inputs": "nli {premise"}, r"tasks\[1\]\.inputs: malformed template"),
        ({"name": "../evil"}, r"tasks\[1\]\.name: invalid task name"),
        ({"vocabulary": "gpt2"}, r"tasks\[1\]\.vocabulary: expected 'byte' or a path"),
        (
            {"vocabulary": "missing.model"},
            r"tasks\[1\]\.vocabulary: expected an existing SentencePiece model",
        ),
        (
            {"labels": {"field": "gold", "words": ["a"]}},
            r"tasks\[1\]: labels\.field 'gold' is not used",
        ),
        (
            {"labels": {"field": "label", "words": []}},
            r"tasks\[1\]\.labels\.words: List should have at least 1 item",
        ),
        (
            {"source": {"type": "jsonl", "splits": {"train": "data/nope.jsonl"}}},
            r"tasks\[1\]\.source\.splits\.train: expected an existing file",
        ),
        (
            {"source": {"type": "jsonl", "splits": "data/train.jsonl"}},
            r"tasks\[1\]\.source\.splits: expected a mapping split -> path",
        ),
        (
            {"source": {"type": "jsonl", "path": "x", "splits": {"train": "data/train.jsonl"}}},
            r"tasks\[1\]\.source: key\(s\) \['path'\] do not apply",
        ),
        ({"source": None}, r"tasks\[1\]\.source: Input should be a valid dictionary"),
    ],
)
def test_bad_task_configs(tmp_path, data_dir, registries, change, expected):
    bad = {**NLI_TASK, "name": "second", **change}
    message = load_error(tmp_path, {"tasks": [NLI_TASK, bad]}, registries)
    assert re.search(expected, message), message
    assert registries[0].names() == []  # all or nothing


def test_missing_keys_and_file_level_errors(tmp_path, data_dir, registries):
    message = load_error(tmp_path, {"tasks": [{"name": "x"}]}, registries)
    for key in ("source", "inputs", "targets"):
        assert f"tasks[0].{key}: required key is missing" in message
    assert "(top level): expected a mapping" in load_error(
        tmp_path, "- just\n- a list\n", registries
    )
    assert "invalid YAML" in load_error(tmp_path, "tasks: [unclosed\n", registries)
    assert "duplicate key 'tasks'" in load_error(tmp_path, "tasks: []\ntasks: []\n", registries)
    assert "typo: unknown key; expected one of: tasks, pretraining, mixtures" in load_error(
        tmp_path, {"typo": []}, registries
    )
    with pytest.raises(ConfigError, match="task file not found"):
        load_yaml(tmp_path / "absent.yaml", task_registry=registries[0])


def test_duplicate_and_already_registered_names(tmp_path, data_dir, registries):
    twice = {"tasks": [NLI_TASK, NLI_TASK]}
    assert "tasks[1].name: 'my_nli' is already defined at" in load_error(
        tmp_path, twice, registries
    )
    path = write_config(tmp_path, {"tasks": [NLI_TASK]})
    first, _ = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    assert "task 'my_nli' is already registered" in load_error(
        tmp_path, {"tasks": [NLI_TASK]}, registries
    )
    again, _ = load_yaml(
        path, task_registry=registries[0], mixture_registry=registries[1], overwrite=True
    )
    assert registries[0].get("my_nli") is again[0] is not first[0]


def test_default_and_shared_vocabularies(tmp_path, data_dir, registries):
    default = {k: v for k, v in NLI_TASK.items() if k != "vocabulary"}
    other = {**NLI_TASK, "name": "other"}
    path = write_config(tmp_path, {"tasks": [default, other, {**other, "name": "third"}]})
    (a, b, c), _ = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    assert isinstance(a.output_features["inputs"].vocabulary, LazyVocabulary)  # not built yet
    assert b.output_features == c.output_features  # one ByteVocabulary shared by "byte" tasks


# --------------------------------------------------------------------------- mixtures


def test_mixtures_with_rates_nesting_and_custom_registries(tmp_path, data_dir, registries):
    config = {
        "tasks": [NLI_TASK, STS_TASK],
        "mixtures": [
            {
                "name": "outer",
                "tasks": ["inner", {"name": "my_sts", "rate": 1.0}],
                "strategy": "equal",
            },
            {
                "name": "inner",
                "tasks": ["my_nli", "my_sts"],
                "strategy": "temperature",
                "temperature": 2.0,
                "cap": 4,
            },
        ],
    }
    path = write_config(tmp_path, config)
    tasks, mixtures = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    assert [m.name for m in mixtures] == ["outer", "inner"]
    assert registries[1].names() == ["inner", "outer"]
    inner = registries[1].get("inner")
    rates = inner.rates("train")
    # temperature 2 with cap 4: min(6, 4) ** 0.5 vs min(3, 4) ** 0.5
    assert rates["my_nli"] == pytest.approx(2 / (2 + 3**0.5))
    assert sorted(t.name for t in registries[1].get("outer").tasks) == ["my_nli", "my_sts"]


@pytest.mark.parametrize(
    ("mixture", "expected"),
    [
        (
            {"name": "m", "tasks": ["ghost"]},
            r"mixtures\[0\]\.tasks\[0\]\.name: expected the name of a task or mixture",
        ),
        ({"name": "m", "tasks": []}, r"mixtures\[0\]\.tasks: List should have at least 1 item"),
        (
            {"name": "m", "tasks": ["my_nli"], "strategy": "random"},
            r"mixtures\[0\]\.strategy: Input should be",
        ),
        (
            {"name": "m", "tasks": ["my_nli"], "strategy": "explicit"},
            r"mixtures\[0\]: strategy 'explicit' needs a rate",
        ),
        (
            {"name": "m", "tasks": [{"name": "my_nli", "rate": -1}]},
            r"mixtures\[0\]\.tasks\[0\]\.rate: Input should be greater than or equal to 0",
        ),
        ({"name": "m", "tasks": ["m"]}, r"mixtures\[0\]\.tasks: mixtures nest in a cycle: m -> m"),
        (
            {"name": "my_nli", "tasks": ["my_nli"]},
            r"mixtures\[0\]\.name: 'my_nli' is already defined at .*bad.yaml:\d+ \(tasks\[0\]\)",
        ),
    ],
)
def test_bad_mixture_configs(tmp_path, data_dir, registries, mixture, expected):
    message = load_error(tmp_path, {"tasks": [NLI_TASK], "mixtures": [mixture]}, registries)
    assert re.search(expected, message), message
    assert registries[0].names() == [] and registries[1].names() == []


def test_mixture_may_use_registered_tasks(tmp_path, data_dir, registries):
    write_config(tmp_path, {"tasks": [NLI_TASK]}, "a.yaml")
    load_yaml(tmp_path / "a.yaml", task_registry=registries[0], mixture_registry=registries[1])
    path = write_config(tmp_path, {"mixtures": [{"name": "solo", "tasks": ["my_nli"]}]}, "b.yaml")
    _, (mixture,) = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    assert mixture.rates("train") == {"my_nli": 1.0}


def test_hf_folder_source_in_yaml(tmp_path, registries):
    import datasets

    rows = [{"q": f"question {i}", "a": f"answer {i}"} for i in range(4)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows)}).save_to_disk(
        str(tmp_path / "qa")
    )
    task = {
        "name": "qa",
        "source": {"type": "hf", "path": "qa", "splits": ["train"]},
        "inputs": "question: {q}",
        "targets": "{a}",
        "vocabulary": "byte",
    }
    path = write_config(tmp_path, {"tasks": [task]})
    (loaded,), _ = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    texts = [e["targets_pretokenized"] for e in loaded.get_dataset("train")]
    assert texts == [r["a"] for r in rows]


def test_sentencepiece_vocabulary_path_is_loaded_lazily(tmp_path, data_dir, registries):
    from taskmix.data.tokenizer import SentencePieceVocabulary, train_sentencepiece

    texts = [f"nli premise: train premise {i} hypothesis: hyp {i} entailment" for i in range(50)]
    model = train_sentencepiece(texts, tmp_path / "spm" / "tiny", 40, num_threads=1)
    task = {**NLI_TASK, "vocabulary": "spm/tiny.model"}
    path = write_config(tmp_path, {"tasks": [task]})
    (loaded,), _ = load_yaml(path, task_registry=registries[0], mixture_registry=registries[1])
    vocab = loaded.output_features["inputs"].vocabulary
    assert isinstance(vocab, LazyVocabulary)
    example = next(loaded.get_dataset("train"))
    reference = SentencePieceVocabulary(model)
    expected = reference.encode("nli premise: train premise 0 hypothesis: hyp 0") + [1]
    assert example["inputs"].tolist() == expected
    assert vocab.vocab_size == reference.vocab_size


def test_a_cleaned_corpus_is_a_pretraining_task_in_one_line(tmp_path):
    import json

    from taskmix.data.registry import Registry

    corpus = tmp_path / "clean"
    corpus.mkdir()
    docs = [" ".join(f"word{i * 7 + j}" for j in range(60)) for i in range(5)]
    (corpus / "part-00000.jsonl").write_text("".join(json.dumps({"text": d}) + "\n" for d in docs))
    config = tmp_path / "corpus.yaml"
    config.write_text(
        "pretraining:\n"
        "  - {name: mini_c4, corpus: clean/, objective: span_corruption, input_length: 32, vocabulary: byte}\n"
    )
    tasks, _ = load_yaml(
        config, task_registry=Registry("task"), mixture_registry=Registry("mixture")
    )
    (task,) = tasks
    examples = list(task.get_dataset("train"))
    lengths = [len(ex["inputs"]) for ex in examples]
    assert max(lengths) == 32 and lengths.count(32) >= len(lengths) - 1  # only the last is shorter
    vocab = task.output_features["targets"].vocabulary
    assert (
        vocab.sentinel_id(0) in examples[0]["inputs"]
        and vocab.sentinel_id(0) in examples[0]["targets"]
    )

    bad = tmp_path / "bad.yaml"
    bad.write_text("pretraining:\n  - {name: x, corpus: missing/, vocabulary: byte}\n")
    with pytest.raises(ConfigError, match=r"pretraining\[0\]: corpus path .*missing"):
        load_yaml(bad, task_registry=Registry("task"), mixture_registry=Registry("mixture"))
