"""``taskmix experiment``: listing, a dry run whose commands run as printed, the table."""

from __future__ import annotations

import json
import shlex

import pytest

from taskmix.cli.main import main

SETTINGS = """\
evals: 1
grid: {cap: [64], temperature: [2]}
base:
  data: {batch_size: 4, input_length: 64, target_length: 16}
  eval: {max_examples: 4, max_decode_length: 8}
"""


def test_help_lists_the_experiments(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "--help"])
    assert "  mixing " in capsys.readouterr().out


def test_unknown_experiment_is_refused(capsys):
    with pytest.raises(SystemExit):
        main(["experiment", "nope", "--out", "x"])
    assert "invalid choice: 'nope'" in capsys.readouterr().err


def test_dry_run_then_collect(default_tasks, tmp_path, capsys):
    settings = tmp_path / "quick.yaml"
    settings.write_text(SETTINGS)
    out = tmp_path / "exp"
    argv = ["experiment", "mixing", str(settings), "--out", str(out), "--budget", "2"]
    assert main([*argv, "--families", "world_cb", "--dry-run"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "# stage 1: 3 runs" and len(lines) == 4
    assert not (out / "runs").exists()  # nothing trained
    for line in lines[1:]:  # what a scheduler would run
        command = shlex.split(line)
        assert command[0] == "taskmix"
        assert main(command[1:]) == 0
    capsys.readouterr()
    assert main([*argv, "--families", "world_cb", "--no-plots"]) == 0
    printed = capsys.readouterr().out
    assert "3 runs already finished; 0 to train" in printed
    assert "proportional_K64" in printed and "equal" in printed
    result = json.loads((out / "results.json").read_text())
    assert [row[0] for row in result["rows"]] == ["proportional_K64", "temperature_T2", "equal"]
    assert all(run["step"] == 2 for run in result["runs"].values())
    assert main([*argv, "--families", "nli"]) == 2  # other settings: refused
    assert "other settings ['families']" in capsys.readouterr().err
