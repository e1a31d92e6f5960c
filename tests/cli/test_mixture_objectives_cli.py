"""``taskmix mixture show`` overrides and ``taskmix objectives show`` parameters."""

from __future__ import annotations

import json

import pytest

from taskmix.cli.main import main


def test_mixture_show_with_another_strategy_drops_the_old_cap(capsys):
    assert main(["mixture", "show", "default", "--strategy", "equal", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 24
    assert all(row["rate"] == pytest.approx(1 / 24) for row in rows)
    assert main(["mixture", "show", "default", "--strategy", "equal"]) == 0
    assert "strategy=equal cap=None temperature=1.0" in capsys.readouterr().out


def test_mixture_show_keeps_the_cap_for_temperature_and_rejects_cap_with_equal(capsys):
    assert (
        main(["mixture", "show", "default", "--strategy", "temperature", "--temperature", "2"]) == 0
    )
    assert "strategy=temperature cap=2000 temperature=2.0" in capsys.readouterr().out
    assert main(["mixture", "show", "default", "--strategy", "equal", "--cap", "10"]) == 2
    assert "not to 'equal'" in capsys.readouterr().err


def test_objectives_show_prefix_lm_takes_a_noise_density(capsys):
    args = ["objectives", "show", "--objective", "prefix_lm"]
    assert main([*args, "--param", "noise_density=0.2"]) == 0
    out = capsys.readouterr().out
    assert "prefix_lm(noise_density=0.2, batch_size=128)" in out
    assert main(args) == 0
    assert "prefix_lm(noise_density=0.5, batch_size=128)" in capsys.readouterr().out
    assert main([*args, "--param", "noise_density=1.5"]) == 2
    assert "noise_density" in capsys.readouterr().err
