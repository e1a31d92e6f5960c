"""``taskmix train|eval|predict`` on a tiny run trained for a few steps."""

from __future__ import annotations

import io
import json

import pytest
import yaml

from taskmix.cli.main import main
from tests.training.helpers import tiny


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    config = folder / "tiny.yaml"
    config.write_text(
        yaml.safe_dump(
            tiny(
                steps=3,
                eval={"every": 1, "tasks": ["topic", "world_nli"], "max_examples": 3},
                checkpoint={"every": 100, "keep_best": ["per_task", "average"]},
            )
        )
    )
    assert main(["train", str(config), "--out", str(folder / "run"), "--no-progress"]) == 0
    return folder / "run"


def _eval(capsys, *argv):
    assert main(["eval", *map(str, argv), "--json", "--max-examples", "2"]) == 0
    return json.loads(capsys.readouterr().out)


def test_train_writes_a_report(run):
    report = json.loads((run / "report.json").read_text())
    assert report["step"] == 3 and set(report["final"]["results"]) == {"topic", "world_nli"}


def test_eval_scores_the_runs_eval_tasks(run, capsys):
    results = _eval(capsys, run)
    assert set(results) == {"topic", "world_nli"}
    assert all(0 <= v <= 100 for m in results.values() for v in m.values())
    assert set(_eval(capsys, run, "--tasks", "topic")) == {"topic"}


@pytest.mark.parametrize("which", ["best", "best:topic", "best:world_nli/accuracy", "3"])
def test_eval_picks_a_checkpoint(run, capsys, which):
    assert set(_eval(capsys, run, "--checkpoint", which)) == {"topic", "world_nli"}


def test_eval_of_an_unknown_best_is_a_clear_error(run, capsys):
    assert main(["eval", str(run), "--checkpoint", "best:topik"]) == 2
    assert "no best checkpoint recorded for 'topik'" in capsys.readouterr().err


def test_eval_rank_classification_of_an_ensemble(run, capsys):
    results = _eval(capsys, run, "--rank-classification", "--ensemble", run)
    assert set(results) == {"topic", "world_nli"}


def test_an_ensemble_needs_one_vocabulary(run, capsys, tmp_path):
    from taskmix.training.config import parse_config
    from taskmix.training.trainer import train

    other = tmp_path / "other"
    train(parse_config(tiny(steps=1, vocabulary="default")), other, progress=False)
    assert main(["eval", str(run), "--ensemble", str(other)]) == 2
    assert "uses another vocabulary (sentencepiece" in capsys.readouterr().err


def test_predict_texts_and_files(run, capsys, tmp_path, monkeypatch):
    assert main(["predict", str(run), "topic sentence: a", "topic sentence: b"]) == 0
    assert capsys.readouterr().out.count("\n") == 2  # one line per input (possibly empty)
    lines = tmp_path / "inputs.txt"
    lines.write_text("topic sentence: a\n\nworld_nli premise: b hypothesis: c\n")
    assert main(["predict", str(run), "--file", str(lines), "--max-length", "3"]) == 0
    assert capsys.readouterr().out.count("\n") == 2  # blank lines are no inputs
    monkeypatch.setattr("sys.stdin", io.StringIO("topic sentence: a\n"))
    assert main(["predict", str(run), "--file", "-"]) == 0
    assert capsys.readouterr().out.count("\n") == 1


def test_predict_without_inputs_is_an_error(run, capsys):
    assert main(["predict", str(run)]) == 2
    assert "give input texts, --file or --task" in capsys.readouterr().err


def test_train_eval_predict_an_adapter_run(run, capsys, tmp_path):
    config = tmp_path / "adapter.yaml"
    model = {"init_from": str(run), "overrides": {}, "adapter": {"kind": "lora", "rank": 2}}
    config.write_text(yaml.safe_dump(tiny(steps=2, model=model)))
    out = tmp_path / "adapter"
    assert main(["train", str(config), "--out", str(out), "--no-progress"]) == 0
    capsys.readouterr()
    scores = _eval(capsys, out)
    assert "topic" in json.dumps(scores)
    assert main(["predict", str(out), "topic sentence: a"]) == 0
    assert capsys.readouterr().out.count("\n") == 1
