"""The data-layer commands a newcomer types first, and the demo's quick path."""

from __future__ import annotations

import json

import pytest

from taskmix.cli.main import main


def run_json(capsys, *argv):
    assert main(list(argv)) == 0
    return json.loads(capsys.readouterr().out)


def test_tasks_list_json_has_names_families_and_split_counts(capsys):
    entries = run_json(capsys, "tasks", "list", "--json")
    by_name = {e["name"]: e for e in entries}
    assert len(by_name) >= 26
    assert by_name["world_nli"]["family"] == "nli"
    assert set(by_name["topic"]["splits"]) == {"train", "validation", "test"}
    assert all(n > 0 for n in by_name["topic"]["splits"].values())


def test_tasks_show_prints_text_examples(capsys):
    data = run_json(capsys, "tasks", "show", "topic", "-n", "2", "--json")
    assert len(data["examples"]) == 2
    assert data["examples"][0]["inputs"].startswith("topic sentence:")


def test_mixture_show_rates_sum_to_one_and_follow_overrides(capsys):
    default = run_json(capsys, "mixture", "show", "default", "--json")
    assert sum(e["rate"] for e in default) == pytest.approx(1.0)
    assert {"task", "num_examples", "rate"} <= set(default[0])
    equalish = run_json(capsys, "mixture", "show", "default", "--temperature", "1000", "--json")
    rates = [e["rate"] for e in equalish]
    assert (
        max(rates) / min(rates)
        < 1.05
        < max(e["rate"] for e in default) / min(e["rate"] for e in default)
    )
    capped = run_json(capsys, "mixture", "show", "default", "--cap", "100", "--json")
    big = [e["rate"] for e in capped if e["num_examples"] >= 100]
    assert max(big) == pytest.approx(min(big))


def test_bad_override_is_a_clear_error(capsys):
    assert main(["mixture", "show", "default", "--cap", "0"]) == 2
    assert "cap" in capsys.readouterr().err


def test_unknown_task_is_a_clear_error(capsys):
    assert main(["tasks", "show", "nope"]) == 2
    assert "taskmix: error: unknown task 'nope'" in capsys.readouterr().err


def test_quick_demo_writes_report_and_plot(tmp_path, capsys):
    assert main(["demo", "--size", "quick", "--out", str(tmp_path), "--no-progress"]) == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["finetune"]["task"] == "translate_en_zarnic"
    assert "translate_en_zarnic" in report["tasks"] and len(report["tasks"]) == 25
    for entry in report["tasks"].values():
        assert entry["main_metric"] in entry["metrics"]
    # the chance level is measured on the examples scored (validation), not on the test split
    from taskmix.data.registry import TaskRegistry
    from taskmix.recipes.demo import chance_level

    assert report["above_chance"]["split"] == "validation"
    assert report["tasks"]["topic"]["chance"] == chance_level(
        TaskRegistry.get("topic"), "validation", 4
    )
    assert (tmp_path / "learning_curves.png").read_bytes()[:4] == b"\x89PNG"
    assert "tasks score more than 10 points above chance" in capsys.readouterr().out
