"""The transfer-matrix experiment: its runs, its nested mixtures, and the matrix arithmetic."""

from __future__ import annotations

import csv
import json

import pytest
import yaml

from taskmix.recipes.experiments.base import Outcome
from taskmix.recipes.experiments.runner import plan_experiment, run_experiment
from taskmix.recipes.experiments.transfer_matrix import (
    pair_run,
    transfer_matrix,
)


def done(name: str, scores: dict[str, float]) -> Outcome:
    return Outcome(name, "done", report={"best": {t: {"value": v} for t, v in scores.items()}})


def test_matrix_arithmetic_on_fixed_scores():
    tasks = {"nli": ["a1", "a2"], "qa": ["b1"], "sum": ["c1"]}
    outcomes = {
        "alone_nli": done("alone_nli", {"a1": 40.0, "a2": 60.0}),  # nli alone: 50
        "alone_qa": done("alone_qa", {"b1": 20.0}),
        "alone_sum": done("alone_sum", {"c1": 0.0}),  # a zero baseline: no relative change
        pair_run("nli", "qa"): done("p", {"a1": 50.0, "a2": 60.0, "b1": 15.0}),
        pair_run("nli", "sum"): done("p", {"a1": 30.0, "a2": 50.0, "c1": 4.0}),
        pair_run("qa", "sum"): Outcome("p", "failed", error="boom"),
    }
    m = transfer_matrix(["nli", "qa", "sum"], tasks, outcomes)
    assert m["alone"] == {"nli": 50.0, "qa": 20.0, "sum": 0.0}
    # row i = co-trained with, column j = scored
    assert m["points"] == [[0.0, -5.0, 4.0], [5.0, 0.0, None], [-10.0, None, 0.0]]
    assert m["relative"][1][0] == pytest.approx(10.0)  # nli 55 vs 50 with qa
    assert m["relative"][0][1] == pytest.approx(-25.0)  # qa 15 vs 20 with nli
    assert m["relative"][0][2] is None and m["relative"][2][0] == pytest.approx(-20.0)
    assert m["co_trained"][0][1] == 15.0 and m["co_trained"][1][1] == 20.0  # diagonal: alone
    assert m["row_mean_points"] == [pytest.approx(-0.5), 5.0, -10.0]
    assert m["row_mean_relative"] == [pytest.approx(-25.0), pytest.approx(10.0), -20.0]
    assert m["best_effort"] == ["qa"]
    assert m["ranked"] == ["qa", "nli", "sum"]


def test_runs_and_nested_mixtures(quick, tmp_path):
    experiment, settings = quick(
        "transfer-matrix", budget=3, families=["world_cb", "cause_effect", "physical_goal"]
    )
    plan = plan_experiment(experiment, settings, tmp_path)
    names = [r.name for r in plan.runs]
    assert names == ["alone_nli", "alone_commonsense", "pair_commonsense__nli"]
    assert all(r.steps == 3 for r in plan.runs)  # equal steps for every run
    mixtures = {m["name"]: m for m in json.loads((tmp_path / "tasks.yaml").read_text())["mixtures"]}
    assert mixtures["tm_nli"]["tasks"] == ["world_cb"]
    assert mixtures["tm_commonsense"]["tasks"] == ["cause_effect", "physical_goal"]
    assert mixtures["tm_commonsense"]["strategy"] == "proportional"
    pair = mixtures["tm_pair_commonsense__nli"]
    assert pair["strategy"] == "equal" and pair["tasks"] == ["tm_nli", "tm_commonsense"]
    config = yaml.safe_load((tmp_path / "configs" / "pair_commonsense__nli.yaml").read_text())
    assert config["data"]["mixture"] == "tm_pair_commonsense__nli"
    assert config["eval"]["tasks"] == ["world_cb", "cause_effect", "physical_goal"]


def test_end_to_end(quick, tmp_path):
    experiment, settings = quick("transfer-matrix", budget=2, families=["world_cb", "cause_effect"])
    result = run_experiment("transfer-matrix", tmp_path, settings, plots=True)
    assert all(run["status"] == "done" for run in result["runs"].values())
    assert result["columns"] == [
        "co-trained with i \\ scored j",
        "nli",
        "commonsense",
        "mean pts",
        "mean %",
    ]
    assert [row[0] for row in result["rows"]] == ["(j alone: score)", "+ nli", "+ commonsense"]
    matrix = json.loads((tmp_path / "transfer_matrix.json").read_text())
    assert matrix["families"] == ["nli", "commonsense"] and matrix["steps"] == 2
    assert matrix["points"][0][0] == 0.0 and matrix["points"][1][1] == 0.0
    assert result["rows"][1][2] == matrix["points"][0][1]  # table cell = matrix cell
    lines = list(csv.DictReader((tmp_path / "transfer_matrix.csv").open()))
    assert len(lines) == 4 and lines[1]["co_trained_with"] == "nli"
    assert lines[1]["scored"] == "commonsense"
    assert (tmp_path / "transfer_matrix.png").stat().st_size > 0
    assert (tmp_path / "transfer_matrix_points.png").exists()
