"""A user's own tasks from every command: tasks, mixture, train (config ``tasks:`` and
``--tasks``), eval and predict of the run later, after the task file moved."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from taskmix.cli.main import main
from tests.training.helpers import tiny

TASK_FILE = {
    "tasks": [
        {
            "name": "cli_capitals",
            "family": "closed_book_qa",
            "source": {
                "type": "jsonl",
                "splits": {"train": "data/train.jsonl", "validation": "data/dev.jsonl"},
            },
            "inputs": "capital of {country}",
            "targets": "{capital}",
            "metrics": ["exact_match"],
        }
    ],
    "mixtures": [{"name": "cli_capitals_mix", "tasks": ["cli_capitals", "topic"]}],
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A user's folder: JSONL data, a task file beside it, a config in another folder."""
    root = tmp_path_factory.mktemp("project")
    (root / "tasks" / "data").mkdir(parents=True)
    for split, n in (("train", 40), ("dev", 6)):
        rows = [{"country": f"land{i}", "capital": f"city{i}"} for i in range(n)]
        path = root / "tasks" / "data" / f"{split}.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "tasks" / "capitals.yaml").write_text(yaml.safe_dump(TASK_FILE, sort_keys=False))
    (root / "configs").mkdir()
    config = tiny(
        steps=2,
        tasks=["../tasks/capitals.yaml"],  # relative to the config file
        data={"mixture": "cli_capitals_mix"},
        eval={"tasks": ["cli_capitals"], "max_examples": 3},
    )
    (root / "configs" / "capitals.yaml").write_text(yaml.safe_dump(config))
    return root


@pytest.fixture(scope="module")
def run(project) -> Path:
    out = project / "run"
    config = project / "configs" / "capitals.yaml"
    assert main(["train", str(config), "--out", str(out), "--no-progress"]) == 0
    return out


def test_tasks_list_show_and_mixture_show_take_task_files(project, capsys):
    task_file = str(project / "tasks" / "capitals.yaml")
    assert main(["tasks", "list", "--tasks", task_file, "--json"]) == 0
    listed = {t["name"]: t for t in json.loads(capsys.readouterr().out)}
    assert listed["cli_capitals"]["splits"] == {"train": 40, "validation": 6}
    assert "topic" in listed  # the default tasks stay
    assert main(["tasks", "show", "cli_capitals", "--tasks", task_file, "-n", "1"]) == 0
    assert "capital of land" in capsys.readouterr().out
    assert main(["mixture", "show", "cli_capitals_mix", "--tasks", task_file, "--json"]) == 0
    rates = {e["task"]: e["rate"] for e in json.loads(capsys.readouterr().out)}
    assert set(rates) == {"cli_capitals", "topic"}


def test_a_missing_task_file_names_the_key(project, capsys):
    config = project / "configs" / "capitals.yaml"
    assert main(["train", str(config), "--tasks", str(project / "nope.yaml")]) == 2
    assert "tasks[1]: no such task file" in capsys.readouterr().err
    broken = project / "configs" / "broken.yaml"
    broken.write_text("steps: 1\ntasks:\n  - ../tasks/capitals.yaml\n  - ../tasks/gone.yaml\n")
    assert main(["train", str(broken)]) == 2
    err = capsys.readouterr().err
    assert "broken.yaml:4: tasks[1]: no such task file" in err and "gone.yaml" in err


def test_train_records_the_task_files_and_eval_works_after_they_moved(project, run, capsys):
    manifest = json.loads((run / "tasks" / "manifest.json").read_text())
    (entry,) = manifest["files"]
    assert entry["original"] == str((project / "tasks" / "capitals.yaml").resolve())
    assert entry["tasks"] == ["cli_capitals"] and entry["mixtures"] == ["cli_capitals_mix"]
    assert len(entry["data_files"]["cli_capitals"]) == 2

    moved = project / "moved.yaml"
    shutil.move(project / "tasks" / "capitals.yaml", moved)
    try:
        assert main(["eval", str(run), "--json", "--max-examples", "2"]) == 0
        assert set(json.loads(capsys.readouterr().out)) == {"cli_capitals"}
        assert main(["predict", str(run), "--task", "cli_capitals", "-n", "2"]) == 0
        out = capsys.readouterr().out
        assert out.count("prediction:") == 2 and "target:     city0" in out
    finally:
        shutil.move(moved, project / "tasks" / "capitals.yaml")


def test_eval_of_a_run_whose_task_file_changed_is_refused_unless_accepted(project, run, capsys):
    path = project / "tasks" / "capitals.yaml"
    original = path.read_text()
    path.write_text(original.replace("capital of", "the capital of"))
    try:
        assert main(["eval", str(run), "--json", "--max-examples", "2"]) == 2
        err = capsys.readouterr().err
        assert "task cli_capitals" in err and "changed since run" in err
        assert "--accept-changed-tasks" in err
        argv = ["eval", str(run), "--json", "--max-examples", "2", "--accept-changed-tasks"]
        assert main(argv) == 0
        assert set(json.loads(capsys.readouterr().out)) == {"cli_capitals"}
    finally:
        path.write_text(original)
