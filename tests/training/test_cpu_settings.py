"""The CPU switches as config keys: defaults from the environment, applied to the run (oneDNN
put back after), recorded in report.json, set before torch by the taskmix command."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
import yaml

from taskmix.models import onednn
from taskmix.training.callbacks import Callback
from taskmix.training.config import parse_config
from taskmix.training.trainer import RUN_DEFINING_KEYS, train
from tests.training.helpers import tiny

VARIABLES = {
    "onednn": "TASKMIX_ONEDNN",
    "malloc_tuning": "TASKMIX_MALLOC_TUNING",
    "huge_pages": "THP_MEM_ALLOC_ENABLE",
}


@pytest.mark.parametrize("key", sorted(VARIABLES))
def test_defaults_follow_the_environment_variables(monkeypatch, key):
    monkeypatch.delenv(VARIABLES[key], raising=False)
    assert getattr(parse_config({}).cpu, key) is True
    monkeypatch.setenv(VARIABLES[key], "0")
    assert getattr(parse_config({}).cpu, key) is False
    monkeypatch.setenv(VARIABLES[key], "1")
    assert getattr(parse_config({}).cpu, key) is True
    assert getattr(parse_config({"cpu": {key: False}}).cpu, key) is False  # the key wins
    assert "cpu" not in RUN_DEFINING_KEYS  # a resume may change them


class OneDNNSeen(Callback):
    def __init__(self):
        self.seen = []

    def on_step_start(self, ctx):
        self.seen.append(onednn.onednn_enabled(torch.zeros(2, 2)))


@pytest.mark.skipif(not onednn.onednn_enabled(torch.zeros(1)), reason="oneDNN unavailable")
def test_onednn_off_for_the_run_then_back_and_recorded_in_the_report(tmp_path):
    before = onednn.onednn_setting()
    seen = OneDNNSeen()
    run = tmp_path / "run"
    train(parse_config(tiny(cpu={"onednn": False})), run, progress=False, callbacks=[seen])
    assert seen.seen == [False, False]
    assert onednn.onednn_setting() == before
    cpu = json.loads((run / "report.json").read_text())["cpu"]
    assert cpu["onednn"] is False and set(cpu) == set(VARIABLES)

    seen = OneDNNSeen()  # a resume may turn it back on
    train(parse_config(tiny(steps=3, cpu={"onednn": True})), run, progress=False, callbacks=[seen])
    assert seen.seen == [True]
    assert json.loads((run / "report.json").read_text())["cpu"]["onednn"] is True


@pytest.mark.parametrize("huge_pages", [False, True])
def test_the_taskmix_command_sets_huge_pages_from_the_config(tmp_path, huge_pages):
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump(tiny(steps=1, cpu={"huge_pages": huge_pages})))
    env = {k: v for k, v in os.environ.items() if k != "THP_MEM_ALLOC_ENABLE"}
    cmd = [sys.executable, "-m", "taskmix.cli.main", "train", str(config), "--no-progress"]
    result = subprocess.run(
        [*cmd, "--out", str(tmp_path / "run")], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "run" / "report.json").read_text())
    assert report["cpu"]["huge_pages"] is huge_pages
