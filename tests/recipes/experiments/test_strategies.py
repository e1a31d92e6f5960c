"""The strategies experiment (T5 Table 14): its grid, equal compute, and the table's arithmetic."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from taskmix.default_data import SPAN_CORRUPTION_TASK
from taskmix.errors import ConfigError
from taskmix.recipes.experiments import get_experiment
from taskmix.recipes.experiments.base import Context, Outcome, deep_merge
from taskmix.recipes.experiments.runner import plan_experiment, run_experiment, settings_for
from taskmix.recipes.experiments.strategies import (
    LEAVE_ONE_OUT,
    MULTITASK,
    MULTITASK_PRETRAIN,
    STRATEGIES,
    SUPERVISED,
    UNSUPERVISED,
)

TASKS = ["world_rte", "world_cb"]  # one family, two small tasks
# span corruption of the default corpus needs 29 target tokens (inputs of 128)
SPAN_TARGETS = {"data": {"target_length": 32}}


def config(out: Path, run: str) -> dict:
    return yaml.safe_load((out / "configs" / f"{run}.yaml").read_text())


def mixtures(out: Path) -> dict[str, dict]:
    return {m["name"]: m for m in json.loads((out / "tasks.yaml").read_text())["mixtures"]}


def test_end_to_end(quick, tmp_path):
    _, settings = quick("strategies", budget=2, families=TASKS)
    settings.base = deep_merge(settings.base, SPAN_TARGETS)
    result = run_experiment("strategies", tmp_path, settings, plots=True)
    pretrains = ["unsupervised_pretrain", "multitask_pretrain", "supervised_pretrain"]
    finetunes = [
        f"{p}_{t}" for p in ("unsupervised_ft", "multitask_ft", "supervised_ft") for t in TASKS
    ]
    runs = [*pretrains, MULTITASK, "loo_pretrain_world_rte", *finetunes, "loo_ft_world_rte"]
    assert sorted(result["runs"]) == sorted(runs)
    assert all(r["status"] == "done" for r in result["runs"].values()), result["runs"]
    for run in runs:
        assert (tmp_path / "runs" / run / "report.json").exists()

    # fine-tunes start from their pre-training run and train on their task alone
    for prefix, source in zip(
        ("unsupervised_ft", "multitask_ft", "supervised_ft"), pretrains, strict=True
    ):
        for task in TASKS:
            cfg = config(tmp_path, f"{prefix}_{task}")
            assert cfg["model"]["init_from"] == str(tmp_path.resolve() / "runs" / source)
            assert cfg["data"]["mixture"] == task and cfg["eval"]["tasks"] == [task]
    loo = config(tmp_path, "loo_ft_world_rte")
    assert loo["model"]["init_from"] == str(tmp_path.resolve() / "runs" / "loo_pretrain_world_rte")

    # the mixtures: span corruption + tasks, the supervised tasks only, and without the held-out
    mix = mixtures(tmp_path)
    assert mix["strategies_multitask"]["tasks"] == [SPAN_CORRUPTION_TASK, *TASKS]
    assert mix["strategies_supervised"]["tasks"] == TASKS
    assert mix["strategies_multitask_without_world_rte"]["tasks"] == [
        SPAN_CORRUPTION_TASK,
        "world_cb",
    ]
    assert all(m["strategy"] == "proportional" for m in mix.values())
    assert config(tmp_path, "unsupervised_pretrain")["data"]["mixture"] == SPAN_CORRUPTION_TASK
    assert config(tmp_path, "multitask_pretrain")["data"]["mixture"] == "strategies_multitask"
    assert config(tmp_path, MULTITASK)["data"]["mixture"] == "strategies_multitask"
    assert config(tmp_path, "supervised_pretrain")["data"]["mixture"] == "strategies_supervised"
    loo_pre = config(tmp_path, "loo_pretrain_world_rte")
    assert loo_pre["data"]["mixture"] == "strategies_multitask_without_world_rte"

    # equal compute: P + F per task in every strategy (budget 2: P = 2, F = 1)
    assert result["data"]["steps"] == [2, 1]
    assert config(tmp_path, MULTITASK)["steps"] == 3
    assert all(
        config(tmp_path, run)["steps"] == 2 for run in [*pretrains, "loo_pretrain_world_rte"]
    )
    assert all(config(tmp_path, run)["steps"] == 1 for run in [*finetunes, "loo_ft_world_rte"])

    # the table: a row per strategy, a column per task (few tasks)
    assert result["columns"] == ["strategy", "average", "held-out avg", *TASKS]
    assert [row[0] for row in result["rows"]] == list(STRATEGIES)
    for row in result["rows"]:
        assert row[1] is not None and row[2] is not None
    assert (tmp_path / "strategies.png").exists()
    assert "2^19 + 2^18" in (tmp_path / "results.md").read_text()


def test_leave_out_axis_and_unknown_task(quick, tmp_path):
    experiment, settings = quick(
        "strategies", budget=2, families=TASKS, grid={"leave_out": ["world_cb", "world_rte"]}
    )
    plan = plan_experiment(experiment, settings, tmp_path / "a")
    names = [run.name for run in plan.runs]
    assert {"loo_pretrain_world_cb", "loo_ft_world_cb", "loo_ft_world_rte"} <= set(names)
    # the pre-training runs come before the fine-tunes that start from them
    assert "loo_pretrain_world_cb" in plan.stages[0] and "loo_ft_world_cb" in plan.stages[1]
    experiment, settings = quick(
        "strategies", budget=2, families=TASKS, grid={"leave_out": ["topic"]}
    )
    with pytest.raises(ConfigError, match="leave_out"):
        plan_experiment(experiment, settings, tmp_path / "b")


def test_budget_too_small_names_the_fine_tuning(quick, tmp_path):
    experiment, settings = quick("strategies", budget=1, families=TASKS)
    with pytest.raises(ConfigError, match="fine-tuning"):
        plan_experiment(experiment, settings, tmp_path)


def best(**scores: float) -> dict:
    return {"best": {task: {"value": value} for task, value in scores.items()}}


def test_summary_arithmetic(quick, tmp_path):
    """Fixed outcomes: each strategy's task scores come from the run that reports them."""
    experiment, settings = quick("strategies", budget=10, families=TASKS)
    ctx = Context(experiment, settings, tmp_path)
    reports = {
        "unsupervised_ft_world_rte": best(world_rte=60.0),
        "unsupervised_ft_world_cb": best(world_cb=40.0),
        # the pre-training runs' own scores are never in the table
        "unsupervised_pretrain": best(world_rte=99.0, world_cb=99.0),
        MULTITASK: best(world_rte=50.0, world_cb=30.0),
        "multitask_ft_world_rte": best(world_rte=70.0),
        "multitask_ft_world_cb": best(world_cb=50.0),
        "loo_ft_world_rte": best(world_rte=65.0, world_cb=99.0),
        "supervised_ft_world_rte": best(world_rte=55.0),
        # supervised_ft_world_cb failed: no report
        "supervised_ft_world_cb": {},
    }
    outcomes = {name: Outcome(name, "done", report) for name, report in reports.items()}
    summary = experiment.summarize(ctx, outcomes)
    assert summary.columns == ["strategy", "average", "held-out avg", "world_rte", "world_cb"]
    rows = {row[0]: row[1:] for row in summary.rows}
    assert rows[UNSUPERVISED] == [50.0, 60.0, 60.0, 40.0]
    assert rows[MULTITASK] == [40.0, 50.0, 50.0, 30.0]
    assert rows[MULTITASK_PRETRAIN] == [60.0, 70.0, 70.0, 50.0]
    # leave-one-out scores its held-out task only (world_rte, the nli family's first task)
    assert rows[LEAVE_ONE_OUT] == [65.0, 65.0, 65.0, None]
    assert rows[SUPERVISED] == [55.0, 55.0, 55.0, None]
    assert summary.data["held_out"] == ["world_rte"]
    assert summary.data["steps"] == [10, 5]
    assert any("pre-training 10 + fine-tuning 5" in note for note in summary.notes)


def test_summary_by_family_with_many_tasks(quick, tmp_path):
    experiment, settings = quick("strategies", budget=10, families=["nli", "classification"])
    ctx = Context(experiment, settings, tmp_path)
    assert experiment.held_out(ctx) == ["world_nli", "topic"]
    outcomes = {
        f"multitask_ft_{t}": Outcome(t, "done", best(**{t: float(i)}))
        for i, t in enumerate(ctx.tasks())
    }
    summary = experiment.summarize(ctx, outcomes)
    assert summary.columns == ["strategy", "average", "held-out avg", "nli", "classification"]
    row = next(r for r in summary.rows if r[0] == MULTITASK_PRETRAIN)
    # tasks 0..5 in order: nli = 0, 1, 2; classification = 3, 4, 5; held out = world_nli, topic
    assert row[1:] == [2.5, 1.5, 1.0, 4.0]


def test_default_grid_has_equal_compute(default_tasks, tmp_path):
    """The default grid (2 families, 6 tasks, one held-out task per family): every strategy
    spends P + F steps per task, and the whole grid is (4 + L) P + (3n + L + 1) F steps."""
    experiment = get_experiment("strategies")
    plan = plan_experiment(experiment, settings_for(experiment), tmp_path)
    p, f = 150, 75
    steps = {run.name: run.steps for run in plan.runs}
    assert len(plan.runs) == 26 and sum(steps.values()) == 6 * p + 21 * f
    for run in plan.runs:
        if run.init_from:
            assert steps[run.init_from] + run.steps == p + f
        elif run.labels["stage"] == "train":
            assert run.steps == p + f
