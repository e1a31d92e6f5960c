"""The experiment runner: validation before any run, dependency stages, resume, dry run,
failures reported without stopping the other runs."""

from __future__ import annotations

import json

import pytest
import yaml

from taskmix.errors import ConfigError
from taskmix.recipes.experiments import EXPERIMENTS, get_experiment
from taskmix.recipes.experiments import runner as runner_module
from taskmix.recipes.experiments.base import Context, Experiment, Outcome, RunSpec, Summary
from taskmix.recipes.experiments.runner import (
    dry_run_commands,
    plan_experiment,
    run_experiment,
    settings_for,
    train_runs,
)
from tests.recipes.experiments.conftest import quick_settings


class PretrainFinetune(Experiment):
    """Two stages: a multi-task run, then a fine-tune from it; ``broken`` adds a run that
    fails in training (an eval task nobody defines) and one that starts from it."""

    name = "toy"
    description = "a toy grid for the runner's tests"
    grid = {"broken": [False]}

    def runs(self, ctx: Context) -> list[RunSpec]:
        steps = ctx.steps(arm="toy")
        runs = [
            RunSpec("pre", ctx.train_config(steps, "world_cb", ["world_cb"])),
            RunSpec("fine", ctx.train_config(steps, "world_rte", ["world_rte"]), init_from="pre"),
        ]
        if ctx.axis("broken")[0]:
            runs.append(RunSpec("bad", ctx.train_config(steps, "world_cb", ["no_such_task"])))
            runs.append(RunSpec("after_bad", ctx.train_config(steps, "world_cb", []), "bad"))
        return runs

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        return Summary(["run", "status"], [[n, o.status] for n, o in outcomes.items()])


@pytest.fixture
def toy(monkeypatch, default_tasks):
    monkeypatch.setitem(EXPERIMENTS, "toy", PretrainFinetune)
    return PretrainFinetune()


def test_stages_and_init_from(toy, tmp_path):
    plan = plan_experiment(toy, quick_settings(), tmp_path)
    assert plan.stages == [["pre"], ["fine"]]
    fine = yaml.safe_load(plan.config_path("fine").read_text())
    assert fine["model"]["init_from"] == str(plan.run_dir("pre"))
    assert fine["steps"] == 4 and fine["data"]["batch_size"] == 4  # the settings' base
    commands = dry_run_commands(plan)
    assert commands[0] == "# stage 1: 1 runs"
    assert commands[1].startswith(f"taskmix train {plan.config_path('pre')} --out ")
    assert commands[2] == "# stage 2: 1 runs (after stage 1)"


def test_resume_trains_only_unfinished_runs(toy, tmp_path, monkeypatch):
    calls = []
    original = runner_module.train_one
    monkeypatch.setattr(runner_module, "train_one", lambda c, r: calls.append(r) or original(c, r))
    settings = quick_settings()
    result = run_experiment("toy", tmp_path, settings, plots=False)
    assert result["rows"] == [["pre", "done"], ["fine", "done"]]
    assert len(calls) == 2
    pre_checkpoints = sorted((tmp_path / "runs/pre/checkpoints").iterdir())
    pre_mtime = (tmp_path / "runs/pre/report.json").stat().st_mtime_ns
    # "kill" the second run before it finished: its report is gone, a checkpoint may remain
    (tmp_path / "runs/fine/report.json").unlink()
    calls.clear()
    run_experiment("toy", tmp_path, settings, plots=False)
    assert calls == [str(tmp_path / "runs/fine")]
    assert (tmp_path / "runs/pre/report.json").stat().st_mtime_ns == pre_mtime
    assert sorted((tmp_path / "runs/pre/checkpoints").iterdir()) == pre_checkpoints
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["runs"]["fine"]["status"] == "done" and saved["runs"]["fine"]["step"] == 4
    assert (tmp_path / "results.md").read_text().count("| pre | done |") == 1


def test_a_failing_run_is_reported_and_the_others_finish(toy, tmp_path, capsys):
    result = run_experiment("toy", tmp_path, quick_settings(grid={"broken": [True]}), plots=False)
    status = {name: run["status"] for name, run in result["runs"].items()}
    assert status == {"pre": "done", "fine": "done", "bad": "failed", "after_bad": "skipped"}
    assert "no_such_task" in result["runs"]["bad"]["error"]
    assert "bad did not finish" in result["runs"]["after_bad"]["error"]
    assert "runs that did not finish" in capsys.readouterr().out
    assert "no_such_task" in (tmp_path / "runs/bad/output.log").read_text()  # the traceback


def test_two_workers_train_independent_runs(default_tasks, tmp_path):
    settings = quick_settings(budget=2, families=["nli"], grid={"cap": [64], "temperature": [2]})
    plan = plan_experiment(get_experiment("mixing"), settings, tmp_path)
    events: list[str] = []
    outcomes = train_runs(plan, workers=2, on_event=events.append)
    assert [o.status for o in outcomes.values()] == ["done"] * 3
    assert len(events) == 3 and all(o.best("world_cb") is not None for o in outcomes.values())


def test_bad_input_is_an_error_before_any_run(toy, tmp_path):
    with pytest.raises(ConfigError, match="unknown experiment 'nope'; expected one of"):
        get_experiment("nope")
    with pytest.raises(ConfigError, match=r"toy has no axis 'size'; its axes: broken"):
        plan_experiment(toy, quick_settings(grid={"size": [1]}), tmp_path / "a")
    with pytest.raises(ConfigError, match=r"--budget 1 is too small .* give at least --budget 2"):
        plan_experiment(toy, quick_settings(budget=1, evals=2), tmp_path / "b")
    with pytest.raises(ConfigError, match="toy: run pre: data.batch_size: Input should be"):
        plan_experiment(toy, quick_settings(base={"data": {"batch_size": "many"}}), tmp_path / "c")
    plan_experiment(toy, quick_settings(), tmp_path / "c")  # fixed: nothing was recorded
    plan_experiment(toy, quick_settings(), tmp_path / "d")
    with pytest.raises(ConfigError, match=r"holds toy with other settings \['budget'\]"):
        plan_experiment(toy, quick_settings(budget=8), tmp_path / "d")


def test_settings_file_and_command_line(tmp_path):
    path = tmp_path / "settings.yaml"
    path.write_text("budget: 50\nfamilies: [nli]\ngrid: {cap: [8]}\nbase: {seed: 3}\n")
    experiment = get_experiment("mixing")
    settings = settings_for(experiment, path, budget=20)
    assert (settings.budget, settings.families, settings.grid) == (20, ["nli"], {"cap": [8]})
    assert settings_for(experiment).budget == experiment.default_budget
    path.write_text("budgett: 5\n")
    with pytest.raises(ConfigError, match="budgett"):
        settings_for(experiment, path)


def test_families_accept_task_names(tmp_path):
    ctx = Context(
        get_experiment("mixing"), quick_settings(families=["world_cb", "topic"]), tmp_path
    )
    assert ctx.families() == ["nli", "classification"]
    assert ctx.tasks() == ["world_cb", "topic"]
    ctx = Context(get_experiment("mixing"), quick_settings(families=["nli"]), tmp_path)
    assert ctx.tasks() == ["world_nli", "world_rte", "world_cb"]
    with pytest.raises(ConfigError, match="'physics' is neither a family"):
        Context(get_experiment("mixing"), quick_settings(families=["physics"]), tmp_path).families()
