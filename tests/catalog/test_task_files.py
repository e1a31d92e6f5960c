"""Task files in general: Python modules with register(registry), idempotent loading, defaults
registered only when asked, and a run's record of its task files."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
import yaml

from taskmix.catalog import load_task_file, load_task_files
from taskmix.catalog.records import load_run_tasks, record_task_files
from taskmix.data.registry import Registry
from taskmix.errors import ConfigError


@pytest.fixture
def registries():
    return {"task_registry": Registry("task"), "mixture_registry": Registry("mixture")}


@pytest.fixture
def qa_data(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    data.mkdir()
    rows = [{"question": f"q{i}", "answer": f"a{i}"} for i in range(5)]
    (data / "qa.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return data


def qa_task(name: str = "qa") -> dict:
    return {
        "name": name,
        "source": {"type": "jsonl", "splits": {"train": "data/qa.jsonl"}},
        "inputs": "question: {question}",
        "targets": "{answer}",
        "vocabulary": "byte",
    }


PYTHON_TASKS = """
from taskmix.data.mixtures import Mixture
from taskmix.data.sources import JsonlSource
from taskmix.data.task import Feature, Task, map_examples, tokenize
from taskmix.data.vocabulary import ByteVocabulary
from pathlib import Path

HERE = Path(__file__).parent


def to_text(record):
    return {"inputs": record["question"], "targets": record["answer"], "_where": record["_where"]}


def register(registry):
    vocab = ByteVocabulary()
    task = registry.add(
        Task(
            "py_qa",
            source=JsonlSource({"train": HERE / "data" / "qa.jsonl"}),
            preprocessors=[map_examples(to_text), tokenize],
            output_features={"inputs": Feature(vocab), "targets": Feature(vocab)},
        )
    )
    registry.add(Mixture("py_mix", [task]))
"""


def test_a_python_task_file_registers_through_register_and_leaves_no_module(
    tmp_path, qa_data, registries
):
    path = tmp_path / "my_tasks.py"
    path.write_text(PYTHON_TASKS)
    before = set(sys.modules)
    loaded = load_task_file(path, **registries)
    assert loaded.kind == "python" and loaded.tasks == ["py_qa"] and loaded.mixtures == ["py_mix"]
    task = registries["task_registry"].get("py_qa")
    assert task.num_input_examples("train") == 5
    assert registries["mixture_registry"].get("py_mix").tasks == [task]
    assert set(sys.modules) == before  # executed from its path, not imported into sys.modules


def test_a_python_task_file_without_register_or_with_a_clash_is_a_clear_error(
    tmp_path, qa_data, registries
):
    bare = tmp_path / "bare.py"
    bare.write_text("X = 1\n")
    with pytest.raises(ConfigError, match=r"bare.py: a Python task file must define register"):
        load_task_file(bare, **registries)
    twice = tmp_path / "twice.py"
    twice.write_text(PYTHON_TASKS.replace("registry.add(Mixture", "registry.add(task)  #"))
    with pytest.raises(ConfigError, match=r"twice.py:\d+: task 'py_qa' is already added at"):
        load_task_file(twice, **registries)
    assert "py_qa" not in registries["task_registry"]  # all or nothing


def test_loading_is_idempotent_and_a_changed_file_replaces_its_tasks(tmp_path, qa_data, registries):
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [qa_task()]}))
    first = load_task_file(path, **registries)
    assert load_task_file(path, **registries) is first  # same content: nothing happens
    changed = qa_task()
    changed["inputs"] = "Q: {question}"
    path.write_text(yaml.safe_dump({"tasks": [changed]}))
    second = load_task_file(path, **registries)
    assert second.sha256 != first.sha256
    example = next(iter(registries["task_registry"].get("qa").get_dataset("train")))
    assert example["inputs_pretokenized"].startswith("Q: ")


def test_another_file_defining_a_registered_name_names_both_files(tmp_path, qa_data, registries):
    (tmp_path / "a.yaml").write_text(yaml.safe_dump({"tasks": [qa_task()]}))
    (tmp_path / "b.yaml").write_text(yaml.safe_dump({"tasks": [qa_task()]}))
    load_task_file(tmp_path / "a.yaml", **registries)
    with pytest.raises(ConfigError) as err:
        load_task_file(tmp_path / "b.yaml", **registries)
    message = str(err.value)
    assert "b.yaml:" in message and "tasks[0].name" in message and "a.yaml" in message


def test_bad_task_files_name_file_line_and_key(tmp_path, qa_data, registries):
    with pytest.raises(ConfigError, match="missing.yaml: task file not found"):
        load_task_file(tmp_path / "missing.yaml", **registries)
    with pytest.raises(ConfigError, match=r"task file is YAML .* or Python"):
        load_task_file(tmp_path / "tasks.txt", **registries)
    bad = tmp_path / "dup.yaml"
    bad.write_text("tasks:\n  - name: a\n    name: b\n")
    with pytest.raises(ConfigError, match=r"dup.yaml:3: invalid YAML: duplicate key 'name'"):
        load_task_file(bad, **registries)
    wrong = tmp_path / "wrong.yaml"
    task = qa_task()
    task["inputz"] = task.pop("inputs")
    wrong.write_text(yaml.safe_dump({"tasks": [task]}))
    with pytest.raises(ConfigError) as err:
        load_task_file(wrong, **registries)
    assert re.search(r"wrong.yaml:\d+: tasks\[0\]\.inputz: unknown key", str(err.value))
    assert "tasks[0].inputs: required key is missing" in str(err.value)


def test_the_default_tasks_are_registered_only_when_asked(registries):
    assert "topic" not in registries["task_registry"]
    load_task_files([], **registries)
    assert "topic" in registries["task_registry"] and "default" in registries["mixture_registry"]
    load_task_files([], **registries)  # again: nothing new, no error


def recorded_run(tmp_path: Path, task: str, registries: dict) -> tuple[Path, Path]:
    """A task file of one task, and a run folder that recorded it."""
    path = tmp_path / "tasks.yaml"
    path.write_text(yaml.safe_dump({"tasks": [qa_task(task)]}))
    run = tmp_path / "run"
    record_task_files(run, [load_task_file(path, **registries)])
    return path, run


def test_a_run_keeps_its_task_files_and_loads_them_after_the_original_moved(
    tmp_path, qa_data, registries
):
    path, run = recorded_run(tmp_path, "moved_qa", registries)
    assert (run / "tasks" / "00-tasks.yaml").read_text() == path.read_text()
    path.rename(tmp_path / "elsewhere.yaml")
    fresh = {"task_registry": Registry("task"), "mixture_registry": Registry("mixture")}
    (loaded,) = load_run_tasks(run, **fresh)
    assert loaded.path == path and loaded.tasks == ["moved_qa"]
    # the copy's relative data path resolved against the original's folder
    assert fresh["task_registry"].get("moved_qa").num_input_examples("train") == 5


def test_a_changed_task_file_or_data_file_is_an_error_naming_the_task(
    tmp_path, qa_data, registries
):
    path, run = recorded_run(tmp_path, "changing_qa", registries)

    path.write_text(path.read_text().replace("question: ", "Q: "))
    with pytest.raises(ConfigError, match=r"task changing_qa: task file .*tasks.yaml changed"):
        load_run_tasks(run, **registries)
    load_run_tasks(run, accept_changes=True, **registries)  # accepted: the file as it is now
    with pytest.raises(ConfigError, match="task files changed since the run started"):
        record_task_files(run, [load_task_file(path, **registries)])  # a resume refuses too

    path.write_text(path.read_text().replace("Q: ", "question: "))  # back as recorded
    load_run_tasks(run, **registries)
    data = qa_data / "qa.jsonl"
    recorded = data.read_text()
    data.write_text(recorded + json.dumps({"question": "q", "answer": "a"}) + "\n")
    with pytest.raises(ConfigError, match=r"task changing_qa: data file .*qa.jsonl changed size"):
        load_run_tasks(run, **registries)
    data.write_text(recorded)  # the same size, written later
    os.utime(data, (data.stat().st_atime, data.stat().st_mtime + 100))
    with pytest.raises(ConfigError, match=r"task changing_qa: data file .*qa.jsonl was modified"):
        load_run_tasks(run, **registries)
    load_run_tasks(run, accept_changes=True, **registries)


def test_a_run_whose_task_files_are_gone_says_which(tmp_path, qa_data, registries):
    path, run = recorded_run(tmp_path, "gone_qa", registries)
    path.unlink()
    (run / "tasks" / "00-tasks.yaml").unlink()
    with pytest.raises(ConfigError, match=r"tasks.yaml is gone and so is the run's copy .*gone_qa"):
        load_run_tasks(run, **registries)
