"""The selection experiment: its pre-training arms, their fine-tunes and the table arithmetic."""

from __future__ import annotations

import json

import pytest
import yaml

from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Context, Outcome
from taskmix.recipes.experiments.runner import plan_experiment, run_experiment
from taskmix.recipes.experiments.selection import (
    Selection,
    held_out_score,
    random_tasks,
    read_best_effort,
)

TASKS = ["world_rte", "world_cb", "cause_effect", "physical_goal"]  # nli and commonsense


def config(tmp_path, run: str) -> dict:
    return yaml.safe_load((tmp_path / "configs" / f"{run}.yaml").read_text())


def mixtures(tmp_path) -> dict:
    return {m["name"]: m for m in json.loads((tmp_path / "tasks.yaml").read_text())["mixtures"]}


def matrix_file(tmp_path, best: list[str], ranked: list[str] | None = None, name: str = "m"):
    path = tmp_path / name / "transfer_matrix.json"
    path.parent.mkdir()
    ranked = ranked or ["nli", "commonsense"]
    path.write_text(json.dumps({"families": ranked, "best_effort": best, "ranked": ranked}))
    return path


def test_ratio_and_task_scaling_plan(quick, tmp_path):
    grid = {
        "study": ["ratio", "task-scaling"],
        "ratio": [0, 2, 8],
        "task_fraction": [0.5, 1.0],
        "batch_size": [4, 8],
        "finetune": ["world_stsb"],
    }
    experiment, settings = quick("selection", budget=8, families=TASKS, grid=grid)
    plan = plan_experiment(experiment, settings, tmp_path / "exp")
    out = tmp_path / "exp"
    names = [r.name for r in plan.runs]
    # R = 2 at the settings' batch (4) is also task scaling's 100% at batch 4: trained once
    pre = ["pre_all_R0_bs4", "pre_all_R2_bs4", "pre_all_R8_bs4", "pre_tasks2_R2_bs4"]
    pre += ["pre_tasks2_R2_bs8", "pre_all_R2_bs8"]
    assert names[: len(pre)] == pre
    assert names[len(pre) :] == [f"ft_{p.removeprefix('pre_')}_world_stsb" for p in pre]
    mix = mixtures(out)
    assert config(out, "pre_all_R0_bs4")["data"]["mixture"] == "sel_all"  # no span corruption
    assert mix["sel_all"]["tasks"] == TASKS and mix["sel_all"]["strategy"] == "proportional"
    r8 = mix[config(out, "pre_all_R8_bs4")["data"]["mixture"]]
    assert r8["strategy"] == "explicit"
    assert r8["tasks"] == [
        {"name": "world_span_corruption", "rate": 8.0},
        {"name": "sel_all", "rate": 1.0},
    ]
    assert len(mix["sel_tasks2"]["tasks"]) == 2
    assert config(out, "pre_tasks2_R2_bs8")["data"]["batch_size"] == 8
    assert all(config(out, p)["steps"] == 8 for p in pre)  # same steps at both batch sizes
    ft = config(out, "ft_all_R8_bs4_world_stsb")
    assert ft["model"]["init_from"] == str(out / "runs" / "pre_all_R8_bs4")
    assert ft["data"]["mixture"] == "world_stsb" and ft["steps"] == 2  # 0.25 of the budget


def test_random_subsets_nest_and_are_seeded():
    tasks = [f"t{i}" for i in range(10)]
    small, large = random_tasks(tasks, 3, 0), random_tasks(tasks, 6, 0)
    assert set(small) <= set(large) and len(large) == 6
    assert random_tasks(tasks, 3, 0) == small
    assert [t for t in tasks if t in small] == small  # kept in the tasks' order


def test_best_effort_from_a_matrix(tmp_path):
    path = matrix_file(tmp_path, ["nli"])
    assert read_best_effort(path) == (["nli"], "positive transfer") == read_best_effort(path.parent)
    # no family helps the others: the better half by mean transfer
    path = matrix_file(tmp_path, [], ["qa", "nli", "sum", "commonsense", "dialogue"], "none")
    assert read_best_effort(path) == (["qa", "nli"], "none positive: better half")
    with pytest.raises(ConfigError, match="cannot read"):
        read_best_effort(tmp_path / "nowhere.json")


def test_held_out_finetuned_tasks_must_be_out_of_the_mixture(quick, tmp_path):
    experiment, settings = quick(
        "selection", budget=8, families=TASKS, grid={"finetune": ["world_cb"]}
    )
    with pytest.raises(ConfigError, match="pre-trained"):
        plan_experiment(experiment, settings, tmp_path)


def test_summary_arithmetic_on_fixed_outcomes(tmp_path):
    from tests.recipes.experiments.conftest import quick_settings

    settings = quick_settings(
        budget=8,
        families=TASKS,
        grid={
            "study": ["ratio"],
            "ratio": [0, 2],
            "finetune": ["world_stsb", "translate_en_zarnic"],
        },
    )
    ctx = Context(Selection(), settings, tmp_path)

    def done(task: str, value: float) -> Outcome:
        return Outcome("x", "done", report={"best": {task: {"value": value}}})

    outcomes = {
        "ft_all_R0_bs4_world_stsb": done("world_stsb", 10.0),
        "ft_all_R0_bs4_translate_en_zarnic": done("translate_en_zarnic", 30.0),
        "ft_all_R2_bs4_world_stsb": done("world_stsb", 50.0),
        "ft_all_R2_bs4_translate_en_zarnic": Outcome("x", "failed"),
    }
    summary = Selection().summarize(ctx, outcomes)
    assert summary.columns[-3:] == ["held-out mean", "world_stsb", "translate_en_zarnic"]
    assert summary.rows == [
        ["ratio", "R = 0", 4, "8", 4, 20.0, 10.0, 30.0],
        ["ratio", "R = 2", 4, "8", 4, 50.0, 50.0, None],  # the failed run is left out
    ]
    assert held_out_score({}, {"a": "missing"}) == {"scores": {"a": None}, "mean": None}


def test_mixture_and_prefinetuning_end_to_end(quick, tmp_path):
    grid = {
        "study": ["mixture", "pre-finetuning"],
        "finetune": ["world_stsb"],
        "finetune_fraction": [0.5],
        "matrix": [str(matrix_file(tmp_path, ["nli"]))],
    }
    experiment, settings = quick("selection", budget=4, families=TASKS, grid=grid)
    out = tmp_path / "exp"
    result = run_experiment("selection", out, settings, plots=True)
    assert all(run["status"] == "done" for run in result["runs"].values()), result["runs"]
    labels = [(row[0], row[1]) for row in result["rows"]]
    assert labels == [
        ("mixture", "vanilla (span corruption)"),
        ("mixture", "all tasks"),
        ("mixture", "best-effort (nli; positive transfer)"),
        ("mixture", "random 2 tasks"),  # as many tasks as the best-effort families have
        ("pre-finetuning", "multi-task pre-training"),
        ("pre-finetuning", "pre-finetuning"),
    ]
    assert all(isinstance(row[5], float) for row in result["rows"])
    mix = mixtures(out)
    assert mix["sel_besteffort"]["tasks"] == ["world_rte", "world_cb"]
    assert len(mix["sel_random2"]["tasks"]) == 2
    assert config(out, "pre_vanilla")["data"]["mixture"] == "world_span_corruption"
    # pre-finetuning: 3 span-corruption steps, then 1 supervised step = multi-task's 4 steps
    first, then = config(out, "pre_span_first"), config(out, "pre_prefinetuned")
    assert (first["steps"], then["steps"]) == (3, 1)
    assert config(out, "pre_all_R2_bs4")["steps"] == 4
    assert then["model"]["init_from"] == str(out / "runs" / "pre_span_first")
    assert then["data"]["mixture"] == "sel_all"
    ft = config(out, "ft_prefinetuned_world_stsb")
    assert ft["model"]["init_from"] == str(out / "runs" / "pre_prefinetuned")
    assert ft["steps"] == 2
    assert not (out / "configs" / "ft_span_first_world_stsb.yaml").exists()
    assert (out / "selection.png").exists()
