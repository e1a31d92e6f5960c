"""The scaling experiment: every arm at about 4x the baseline's compute, pre-train then fine-tune,
and the ensembles scored by decoding their members together."""

from __future__ import annotations

import json

import pytest
import yaml

from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Context, Outcome
from taskmix.recipes.experiments.runner import plan_experiment, run_experiment
from taskmix.recipes.experiments.scaling import (
    Scaling,
    base_layers,
    ensemble_members,
    layers_for,
    parameter_count,
)

from .conftest import quick_settings


def test_end_to_end_grid_steps_sizes_and_ensembles(quick, tmp_path):
    _, settings = quick("scaling", budget=4, families=["world_cb"], grid={"members": [2]})
    result = run_experiment("scaling", tmp_path, settings, plots=True)
    configs = {p.stem: yaml.safe_load(p.read_text()) for p in (tmp_path / "configs").glob("*.yaml")}
    assert set(configs) == {
        *(f"{s}_{a}" for s in ("pt", "ft") for a in ("baseline", "4x_steps", "4x_batch")),
        *(f"{s}_{a}" for s in ("pt", "ft") for a in ("2x_size", "4x_size", "seed1")),
        "ft_baseline_seed1",
    }
    steps = {name: c["steps"] for name, c in configs.items()}
    # budget 4 pre-training steps, finetune_fraction 0.5 -> 2 fine-tuning steps
    assert steps["pt_baseline"] == 4 and steps["ft_baseline"] == 2
    assert steps["pt_4x_steps"] == 16 and steps["ft_4x_steps"] == 8
    assert steps["pt_2x_size"] == 8 and steps["ft_2x_size"] == 4
    assert steps["pt_4x_size"] == 4 and steps["pt_4x_batch"] == 4
    assert (
        configs["pt_4x_batch"]["data"]["batch_size"]
        == 4 * configs["pt_baseline"]["data"]["batch_size"]
    )
    for arm in ("baseline", "4x_steps", "4x_batch", "2x_size", "4x_size", "seed1"):
        assert configs[f"ft_{arm}"]["model"]["init_from"] == str(tmp_path / "runs" / f"pt_{arm}")
    assert configs["ft_baseline_seed1"]["model"]["init_from"] == str(
        tmp_path / "runs" / "pt_baseline"
    )
    assert configs["pt_seed1"]["seed"] == 1 and configs["ft_baseline_seed1"]["seed"] == 1
    assert configs["pt_4x_size"]["model"]["overrides"]["num_layers"] == 10  # tiny: 2 -> 10
    assert configs["pt_2x_size"]["model"]["overrides"]["num_layers"] == 5
    rows = {row[0]: row for row in result["rows"]}
    assert list(rows) == [
        "baseline",
        "4x_steps",
        "4x_batch",
        "2x_size",
        "4x_size",
        "4x_ensemble",
        "4x_ensemble_ft",
    ]
    columns = result["columns"]
    assert columns[:8] == [
        "arm",
        "pre-train steps",
        "fine-tune steps",
        "batch",
        "layers",
        "parameters",
        "compute",
        "average",
    ]
    assert rows["4x_steps"][6] == 4.0 and rows["4x_batch"][6] == 4.0
    assert 3.5 < rows["2x_size"][6] < 4.5 and 3.5 < rows["4x_size"][6] < 4.5
    # two members here: separately pre-trained = 2x, one pre-training = (4 + 2*2) / 6
    assert rows["4x_ensemble"][6] == 2.0 and rows["4x_ensemble_ft"][6] == round(8 / 6, 2)
    for row in rows.values():
        assert row[columns.index("average")] is not None
    cached = json.loads((tmp_path / "ensembles" / "4x_ensemble.json").read_text())
    assert cached["members"] == {"ft_baseline": 2, "ft_seed1": 2}
    assert set(cached["results"]) == {"world_cb"}
    assert (tmp_path / "scaling.png").exists()


def test_model_sizes_are_deeper_models_near_2x_and_4x_the_parameters(default_tasks, tmp_path):
    ctx = Context(Scaling(), quick_settings(), tmp_path)
    base = parameter_count(ctx, base_layers(ctx))
    assert base_layers(ctx) == 2
    for factor in (2, 4):
        layers = layers_for(ctx, factor)
        ratio = parameter_count(ctx, layers) / base
        for other in (layers - 1, layers + 1):  # the closest depth to the target
            assert abs(ratio - factor) <= abs(parameter_count(ctx, other) / base - factor)


def test_summary_of_fixed_outcomes(default_tasks, tmp_path):
    """The table's arithmetic on fixed reports (no ensemble: its members are missing)."""
    ctx = Context(Scaling(), quick_settings(budget=10, families=["world_cb", "topic"]), tmp_path)

    def outcome(name: str, cb: float, topic: float) -> Outcome:
        final = {"world_cb": {"accuracy": cb, "macro_f1": cb / 2}, "topic": {"accuracy": topic}}
        return Outcome(name, "done", report={"step": 5, "final": {"results": final}})

    outcomes = {
        "ft_baseline": outcome("ft_baseline", 0.4, 0.6),
        "ft_4x_steps": outcome("ft_4x_steps", 0.8, 1.0),
        "ft_seed1": Outcome("ft_seed1", "failed", error="boom"),
    }
    summary = Scaling().summarize(ctx, outcomes)
    rows = {row[0]: row for row in summary.rows}
    i = summary.columns.index("average")
    assert summary.columns[i + 1 :] == ["nli", "classification"]
    # world_cb: mean of its metrics (0.4, 0.2) = 0.3; average over tasks (0.3 + 0.6) / 2
    assert rows["baseline"][i : i + 3] == pytest.approx([0.45, 0.3, 0.6])
    assert rows["4x_steps"][1:3] == [40, 20] and rows["4x_steps"][i] == (0.6 + 1.0) / 2
    assert rows["4x_size"][i] is None  # not run
    assert rows["4x_ensemble"][i] is None  # a member failed: no ensemble
    assert rows["4x_ensemble"][1:3] == ["4x10", "4x5"]
    assert ensemble_members(ctx)["4x_ensemble_ft"] == [
        "ft_baseline",
        "ft_baseline_seed1",
        "ft_baseline_seed2",
        "ft_baseline_seed3",
    ]


def test_budget_too_small_names_the_arm(quick, tmp_path):
    experiment, settings = quick("scaling", budget=1, families=["world_cb"])
    with pytest.raises(ConfigError, match="fine-tune"):
        plan_experiment(experiment, settings, tmp_path)
