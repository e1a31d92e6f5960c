"""The objectives experiment: pre-train per objective, fine-tune each on the same tasks."""

from __future__ import annotations

import json

import pytest
import yaml

from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Context, Outcome
from taskmix.recipes.experiments.objectives import (
    NO_PRETRAINING,
    Objectives,
    objective_param,
    seconds_per_step,
)
from taskmix.recipes.experiments.runner import plan_experiment, run_experiment
from tests.recipes.experiments.conftest import quick_settings

GRID = {
    "objectives": ["bert_style", "prefix_lm"],
    "corruption_rates": [0.15, 0.5],
    "span_lengths": [3, 10],
    "input_length": [32],
}


def test_default_grid_has_each_arm_once():
    arms = Objectives().arms(Context(Objectives(), _settings(), None))  # type: ignore[arg-type]
    # 7 objectives + rates 10/25/50 + spans 2/5/10; 15% and span 3 are span_corruption itself
    assert len(arms) == 13
    assert arms["span_corruption"] == ("span_corruption", {})
    assert "span_corruption_rate15" not in arms and "span_corruption_span3" not in arms
    assert arms["span_corruption_rate50"][1]["noise_density"] == 0.5
    assert arms["span_corruption_span10"][1] == {
        "noise_density": 0.15,
        "mean_noise_span_length": 10.0,
    }


def test_objective_params_fall_back_to_the_factory_defaults():
    entry = {"objective": "deshuffling", "params": {}}
    assert objective_param(entry, "noise_density") == 1.0
    assert objective_param(entry, "mean_noise_span_length") is None
    entry = {"objective": "span_corruption", "params": {"mean_noise_span_length": 5.0}}
    assert objective_param(entry, "mean_noise_span_length") == 5.0
    assert objective_param(entry, "noise_density") == 0.15
    assert objective_param(None, "noise_density") is None


def test_runs_end_to_end(quick, tmp_path):
    experiment, settings = quick("objectives", budget=4, families=["topic"], grid=GRID)
    result = run_experiment("objectives", tmp_path, settings, plots=True)
    arms = [
        NO_PRETRAINING,
        "bert_style",
        "prefix_lm",
        "span_corruption_rate15",
        "span_corruption_rate50",
        "span_corruption_span10",
    ]
    assert [row[0] for row in result["rows"]] == arms
    tasks = json.loads((tmp_path / "tasks.yaml").read_text())
    entries = {e["name"]: e for e in tasks["pretraining"]}
    assert entries["objective_span_corruption_span10"]["params"]["mean_noise_span_length"] == 10
    assert entries["objective_bert_style"]["input_length"] == 32
    assert tasks["mixtures"][0]["tasks"] == ["topic"]
    for arm in arms:
        finetune = yaml.safe_load((tmp_path / "configs" / f"finetune_{arm}.yaml").read_text())
        assert finetune["steps"] == 2 and finetune["data"]["mixture"] == "objectives_finetune"
        assert (tmp_path / "runs" / f"finetune_{arm}" / "report.json").exists()
        if arm == NO_PRETRAINING:
            assert finetune["model"].get("init_from") is None
            continue
        pretrain = yaml.safe_load((tmp_path / "configs" / f"pretrain_{arm}.yaml").read_text())
        assert finetune["model"]["init_from"] == str(tmp_path / "runs" / f"pretrain_{arm}")
        assert pretrain["steps"] == 4 and pretrain["data"]["mixture"] == f"objective_{arm}"
        assert pretrain["model"]["dropout_rate"] == 0.0
        assert pretrain["data"]["input_length"] == 32
    rows = {row[0]: row for row in result["rows"]}
    columns = result["columns"]
    length = columns.index("target length")
    # BERT-style predicts the whole input; span corruption only the spans (T5's speed argument)
    assert rows["bert_style"][length] > 2 * rows["span_corruption_rate15"][length]
    assert rows["span_corruption_rate50"][length] > rows["span_corruption_rate15"][length]
    assert rows[NO_PRETRAINING][length] is None
    assert (tmp_path / "objectives.png").exists()


def test_summary_arithmetic(default_tasks, tmp_path):
    experiment = Objectives()
    ctx = Context(experiment, _settings(grid={**GRID, "objectives": ["bert_style"]}), tmp_path)
    plan_experiment(experiment, ctx.settings, tmp_path)

    def finetune(name: str, scores: dict[str, float]) -> Outcome:
        best = {task: {"value": value} for task, value in scores.items()}
        return Outcome(name, "done", report={"step": 2, "best": best})

    outcomes = {
        "pretrain_bert_style": Outcome(
            "pretrain_bert_style", "done", report={"step": 4}, seconds=2.0, final_loss=3.5
        ),
        "finetune_bert_style": finetune("finetune_bert_style", {"topic": 40.0}),
        "finetune_no_pretraining": finetune("finetune_no_pretraining", {"topic": 10.0}),
        "pretrain_span_corruption_rate15": Outcome("pretrain_span_corruption_rate15", "failed"),
        "finetune_span_corruption_rate15": Outcome("finetune_span_corruption_rate15", "skipped"),
    }
    summary = experiment.summarize(ctx, outcomes)
    rows = {row[0]: dict(zip(summary.columns, row, strict=True)) for row in summary.rows}
    assert rows["bert_style"]["average"] == 40.0 and rows["bert_style"]["topic"] == 40.0
    assert rows["bert_style"]["pretrain s/step"] == 0.5
    assert rows["bert_style"]["pretrain loss"] == 3.5
    assert rows["bert_style"]["corruption"] == 0.15
    assert rows[NO_PRETRAINING]["average"] == 10.0
    assert rows["span_corruption_rate15"]["average"] is None
    assert rows["span_corruption_rate50"]["average"] is None  # no outcome at all
    assert rows["span_corruption_span10"]["mean span"] == 10.0
    assert seconds_per_step(None) is None


def _settings(budget: int = 4, **kwargs):
    return quick_settings(budget=budget, families=["topic"], **kwargs)


def test_too_small_a_budget_names_the_arm(default_tasks, tmp_path):
    with pytest.raises(ConfigError, match="finetune_no_pretraining"):
        plan_experiment(Objectives(), _settings(budget=1, grid=GRID), tmp_path)
