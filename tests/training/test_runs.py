"""What a run leaves behind: best checkpoints per task, report.json, logged data counts."""

from __future__ import annotations

import json

import pytest
import torch

from taskmix.errors import CheckpointError
from taskmix.training.checkpoint import list_checkpoints
from taskmix.training.config import parse_config
from taskmix.training.runs import find_checkpoint
from tests.training.helpers import tiny
from tests.training.helpers import train_and_evaluate as train

# Scripted scores per step: topic is best at 2, world_nli at 4, the average at 2 (35.0).
SCRIPT = {
    1: {"topic": 10.0, "world_nli": 50.0},
    2: {"topic": 30.0, "world_nli": 40.0},
    3: {"topic": 20.0, "world_nli": 45.0},
    4: {"topic": 5.0, "world_nli": 60.0},
}


def scripted(model, vocabulary, step):
    return {task: {"accuracy": value} for task, value in SCRIPT[step].items()}


def _best_run(tmp_path, keep_best):
    config = tiny(
        steps=4,
        eval={"every": 1, "tasks": ["topic", "world_nli"]},
        checkpoint={"every": 100, "keep_last": 1, "keep_best": keep_best},
    )
    run = tmp_path / "run"
    state = train(parse_config(config), run, progress=False, evaluate=scripted)
    return run, state


def test_each_kept_best_has_its_checkpoint_even_off_the_checkpoint_interval(tmp_path):
    run, state = _best_run(tmp_path, ["per_task", "average"])
    assert state.best["topic"] == {"value": 30.0, "step": 2}
    assert state.best["world_nli/accuracy"] == {"value": 60.0, "step": 4}
    assert state.best["average"]["step"] == 2
    # checkpoint.every=100 never fires: step 2 exists because bests improved there, step 1
    # was written for the same reason and pruned once beaten (keep_last=1).
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == [
        "step-00000002",
        "step-00000004",
    ]
    assert find_checkpoint(run, "best:topic").name == "step-00000002"
    assert find_checkpoint(run, "best:topic/accuracy").name == "step-00000002"
    assert find_checkpoint(run, "best:world_nli").name == "step-00000004"
    assert find_checkpoint(run, "best").name == "step-00000002"
    with pytest.raises(CheckpointError, match=r"no best checkpoint recorded for 'topik'.*topic"):
        find_checkpoint(run, "best:topik")


def test_a_best_not_kept_is_pruned_with_a_clear_message(tmp_path):
    run, _ = _best_run(tmp_path, [])
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step-00000004"]
    with pytest.raises(
        CheckpointError, match="was pruned; list 'topic' .* in checkpoint.keep_best"
    ):
        find_checkpoint(run, "best:topic")


def test_report_json_holds_final_and_best_scores_and_data_counts(tmp_path, capsys):
    run, state = _best_run(tmp_path, ["world_nli"])
    report = json.loads((run / "report.json").read_text())
    assert report["step"] == 4
    assert report["final"]["results"] == {
        "topic": {"accuracy": 5.0},
        "world_nli": {"accuracy": 60.0},
    }
    assert report["best"]["world_nli/accuracy"] == {
        "value": 60.0,
        "step": 4,
        "checkpoint": "checkpoints/step-00000004",
    }
    # topic is not kept: its best step got no checkpoint (only world_nli's bests did)
    assert report["best"]["topic"] == {"value": 30.0, "step": 2, "checkpoint": None}
    # input_length 64 truncates some default-mixture inputs; counted, logged and warned about
    truncated = report["data"]["sources"]["packing"]["truncated"]
    assert report["data"]["totals"]["truncated"] == sum(truncated.values()) > 0
    logged = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    data_lines = [r for r in logged if "data" in r]
    assert [r["step"] for r in data_lines] == [1, 2, 3, 4]  # every evaluation / checkpoint
    assert data_lines[-1]["data"] == report["data"]["totals"]
    out = capsys.readouterr().out
    assert f"the data pipeline truncated {report['data']['totals']['truncated']}" in out
    assert "eval at step 2: average 35.0" in out


def test_data_counts_resume_exactly(tmp_path):
    """Counts are part of the saved state: a run stopped at step 2 and resumed reports what
    an uninterrupted one does."""
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    config = tiny(steps=4, checkpoint={"every": 2})
    train(parse_config(config), straight, progress=False)
    train(parse_config({**config, "steps": 2}), resumed, progress=False)
    train(parse_config(config), resumed, progress=False)
    first, second = (
        json.loads((r / "report.json").read_text())["data"] for r in (straight, resumed)
    )
    assert first == second and first["totals"]["truncated"] > 0


class FakeBar:
    def __init__(self):
        self.written: list[str] = []
        self.postfix: dict[str, str] = {}

    def write(self, text):
        self.written.append(text)

    def set_postfix(self, postfix, refresh=True):
        self.postfix = dict(postfix)

    def update(self, n):
        pass

    def close(self):
        pass


def test_the_eval_table_goes_through_the_progress_bar(tmp_path, monkeypatch, capsys):
    import taskmix.training.trainer as trainer

    bar = FakeBar()
    monkeypatch.setattr(trainer, "_progress_bar", lambda *args: bar)
    config = tiny(steps=2, eval={"every": 1, "tasks": ["topic", "world_nli"]})
    train(parse_config(config), tmp_path / "run", progress=True, evaluate=scripted)
    assert len(bar.written) == 2
    table = bar.written[1].splitlines()
    assert table[0] == "eval at step 2: average 35.0"
    assert table[2].split() == ["topic", "30.0", "accuracy", "30.0"]
    assert table[3].split() == ["world_nli", "40.0", "accuracy", "40.0"]
    assert "eval at step" not in capsys.readouterr().out  # nothing printed around the bar
    assert set(bar.postfix) == {"loss", "lr", trainer.TOKENS_LABEL}


def test_logged_throughput_counts_inputs_and_targets(tmp_path):
    train(parse_config(tiny(steps=2)), tmp_path / "run", progress=False)
    records = [
        json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()
    ]
    rates = [r["tokens_per_s"] for r in records if "loss" in r]
    assert len(rates) == 2 and all(rate > 0 for rate in rates)


@pytest.mark.parametrize("architecture", ["prefix_lm", "decoder_only"])
def test_decoder_only_runs_train_evaluate_checkpoint_and_predict(tmp_path, architecture):
    from taskmix.evaluation.evaluator import predict_texts
    from taskmix.training.runs import load_run

    config = tiny(steps=2, model={"architecture": architecture}, eval={"every": 1})
    state = train(parse_config(config), tmp_path / "run", progress=False)
    assert [h["step"] for h in state.history] == [1, 2]
    assert set(state.history[-1]["results"]["topic"]) == {"accuracy"}
    assert (tmp_path / "run" / "checkpoints" / "step-00000002").is_dir()
    model, vocabulary, _ = load_run(tmp_path / "run")
    prompts = [{"inputs": vocabulary.encode("topic sentence: x") + [vocabulary.eos_id]}] * 2
    texts = predict_texts(model, prompts, vocabulary, max_decode_length=3)
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_a_run_with_grad_accum_trains(tmp_path):
    state = train(parse_config(tiny(steps=1, grad_accum=2)), tmp_path / "run", progress=False)
    assert state.step == 1
    assert torch.isfinite(torch.tensor(state.history[-1]["average"]))
