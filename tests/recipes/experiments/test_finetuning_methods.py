"""The fine-tuning methods experiment: one pre-training, then full fine-tuning, adapters, LoRA and
gradual unfreezing from it on a small and a large task, and full fine-tuning on the mixture."""

from __future__ import annotations

import pytest
import yaml

from taskmix.recipes.experiments.base import Context, Outcome
from taskmix.recipes.experiments.finetuning_methods import FinetuningMethods, summary_table
from taskmix.recipes.experiments.runner import run_experiment

from .conftest import quick_settings

GRID = {"adapter_dims": [8, 512], "lora_ranks": [4], "tasks": ["world_cb", "cause_effect"]}


def test_end_to_end_methods_from_one_pretraining(quick, tmp_path):
    _, settings = quick("finetuning-methods", budget=2, grid=GRID)
    result = run_experiment("finetuning-methods", tmp_path, settings, plots=True)
    configs = {p.stem: yaml.safe_load(p.read_text()) for p in (tmp_path / "configs").glob("*.yaml")}
    methods = ["full", "adapter_d8", "adapter_d512", "lora_r4", "gradual_unfreezing"]
    expected = {f"{m}__{t}" for m in methods for t in GRID["tasks"]}
    assert set(configs) == {"pretrain", "full__default", *expected}
    assert configs["pretrain"]["steps"] == 4  # pretrain_factor 2 x budget
    assert configs["pretrain"]["data"]["mixture"] == "world_span_corruption"
    for name in expected | {"full__default"}:
        assert configs[name]["steps"] == 2
        assert configs[name]["model"]["init_from"] == str(tmp_path / "runs" / "pretrain")
    assert configs["adapter_d512__world_cb"]["model"]["adapter"]["dim"] == 512
    assert configs["lora_r4__world_cb"]["model"]["adapter"] == {
        "kind": "lora",
        "rank": 4,
        "alpha": 8.0,
        "target_modules": ["q", "v"],
    }
    assert configs["gradual_unfreezing__cause_effect"]["optimizer"]["gradual_unfreezing"]
    assert "adapter" not in configs["full__world_cb"]["model"]
    assert configs["full__default"]["data"]["mixture"] == "default"
    assert configs["full__cause_effect"]["data"]["mixture"] == "cause_effect"
    assert result["columns"] == [
        "method",
        "trainable",
        "% of model",
        "world_cb",
        "cause_effect",
        "s/step",
        "checkpoint KB",
    ]
    rows = {row[0]: row for row in result["rows"]}
    assert list(rows) == [*methods, "full (default mixture)"]
    full, small, large, lora = (
        rows["full"],
        rows["adapter_d8"],
        rows["adapter_d512"],
        rows["lora_r4"],
    )
    assert full[2] == 100.0 and rows["gradual_unfreezing"][1] == full[1]
    assert small[1] < large[1] < full[1] and lora[1] < full[1]
    assert small[6] < full[6]  # an adapter checkpoint holds only the adapter
    for row in rows.values():
        assert row[3] is not None and row[4] is not None and row[5] > 0
    assert (tmp_path / "finetuning_methods.png").exists()


def test_summary_of_fixed_outcomes(default_tasks, tmp_path):
    settings = quick_settings(budget=10, grid={**GRID, "adapter_dims": [8], "lora_ranks": []})
    ctx = Context(FinetuningMethods(), settings, tmp_path)

    def outcome(name: str, task: str, score: float, seconds: float) -> Outcome:
        best = {task: {"value": score, "step": 10}}
        return Outcome(name, "done", report={"step": 10, "best": best}, seconds=seconds)

    outcomes = {
        "full__world_cb": outcome("full__world_cb", "world_cb", 0.5, 4.0),
        "full__cause_effect": outcome("full__cause_effect", "cause_effect", 0.7, 6.0),
        "adapter_d8__world_cb": outcome("adapter_d8__world_cb", "world_cb", 0.4, 2.0),
        "adapter_d8__cause_effect": Outcome("adapter_d8__cause_effect", "failed", error="x"),
    }
    full = {"trainable": 1000, "total": 1000, "checkpoint_bytes": 4096}
    measured = {
        "full__world_cb": full,
        "full__cause_effect": {**full, "checkpoint_bytes": 2048},
        "adapter_d8__world_cb": {"trainable": 25, "total": 1025, "checkpoint_bytes": 1024},
    }
    summary = summary_table(ctx, outcomes, measured, GRID["tasks"])
    rows = {row[0]: row for row in summary.rows}
    assert rows["full"] == ["full", 1000, 100.0, 0.5, 0.7, 0.5, 3]  # (0.4 + 0.6) / 2 s/step
    assert rows["adapter_d8"] == ["adapter_d8", 25, round(2500 / 1025, 2), 0.4, None, 0.2, 1]
    assert rows["gradual_unfreezing"][1:] == [None, None, None, None, None, None]
    assert rows["full (default mixture)"][3:5] == [None, None]
    assert summary.columns[3:5] == GRID["tasks"]
    assert "T5 (Table 10)" in summary.notes[-1]
    assert pytest.approx(rows["full"][5]) == 0.5
