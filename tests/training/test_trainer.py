"""End-to-end training: resume after SIGKILL gives the same losses; bad configs fail early."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.training.helpers import tiny

CONFIG = tiny(steps=12, checkpoint={"every": 4})


def _train_cmd(config_path: Path, run_dir: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "taskmix.cli.main",
        "train",
        str(config_path),
        "--out",
        str(run_dir),
        "--no-progress",
    ]


def _losses(run_dir: Path) -> dict[int, float]:
    records = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in records if "loss" in r}


@pytest.fixture
def config_path(tmp_path):
    path = tmp_path / "tiny.yaml"
    path.write_text(yaml.safe_dump(CONFIG))
    return path


def test_sigkill_then_restart_matches_an_uninterrupted_run(tmp_path, config_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    straight = tmp_path / "straight"
    subprocess.run(_train_cmd(config_path, straight), check=True, env=env, capture_output=True)

    killed = tmp_path / "killed"
    proc = subprocess.Popen(
        _train_cmd(config_path, killed),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 240
    while not (killed / "checkpoints" / "step-00000004").exists():
        assert proc.poll() is None, "training ended before the first checkpoint"
        assert time.time() < deadline, "no checkpoint in time"
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert not (killed / "checkpoints" / "step-00000012").exists(), (
        "killed too late to test resuming"
    )

    resumed = subprocess.run(
        _train_cmd(config_path, killed), check=True, env=env, capture_output=True, text=True
    )
    assert "resuming from" in resumed.stdout
    expected, got = _losses(straight), _losses(killed)
    assert sorted(got) == list(range(1, 13))
    for step in expected:
        assert got[step] == pytest.approx(expected[step], abs=1e-6), f"step {step}"


def test_bad_config_fails_before_any_work(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({**CONFIG, "data": {**CONFIG["data"], "batch_sise": 3}}))
    result = subprocess.run(_train_cmd(path, tmp_path / "run"), capture_output=True, text=True)
    assert result.returncode == 2
    assert "data.batch_sise: unknown key" in result.stderr
    assert not (tmp_path / "run").exists()


def test_a_run_folder_refuses_another_config(tmp_path, config_path):
    from taskmix.training.checkpoint import CheckpointError
    from taskmix.training.config import parse_config
    from tests.training.helpers import train_and_evaluate as train

    run = tmp_path / "run"
    config = parse_config({**CONFIG, "steps": 2, "checkpoint": {"every": 2}})
    train(config, run, progress=False)
    other = parse_config({**CONFIG, "seed": 4, "steps": 2, "checkpoint": {"every": 2}})
    with pytest.raises(CheckpointError, match=r"another config \(differs in \['seed'\]\)"):
        train(other, run, progress=False)
    longer = parse_config({**CONFIG, "steps": 3, "checkpoint": {"every": 2}})
    assert train(longer, run, progress=False).step == 3  # training a run for longer is fine


def test_torchrun_two_ranks_share_the_work_and_save_both_states(tmp_path, config_path):
    run = tmp_path / "ddp"
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "taskmix.cli.main",
        "train",
        str(config_path),
        "--out",
        str(run),
        "--no-progress",
        "--set",
        "steps=4",
        "--set",
        "checkpoint.every=4",
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    state = json.loads((run / "checkpoints" / "step-00000004" / "state.json").read_text())
    first, second = (r["data"]["examples"] for r in state["ranks"])
    assert (first["shard_index"], second["shard_index"]) == (0, 1)
    assert first["num_shards"] == second["num_shards"] == 2
    assert sorted(_losses(run)) == [1, 2, 3, 4]
    records = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    for record in (r for r in records if "loss" in r):  # per-task sums over both ranks
        losses, tokens = record["task_loss"], record["task_tokens"]
        mean = sum(losses[t] * tokens[t] for t in losses) / sum(tokens.values())
        assert mean == pytest.approx(record["loss"], abs=1e-5)

    from taskmix.training.checkpoint import CheckpointError
    from taskmix.training.config import load_config
    from tests.training.helpers import train_and_evaluate as train

    config = load_config(config_path, ["steps=4", "checkpoint.every=4"])
    with pytest.raises(CheckpointError, match="saved by 2 processes, resumed by 1"):
        train(config.model_copy(update={"steps": 5}), run, progress=False)


def test_tensorboard_events_mirror_the_log(tmp_path):
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from taskmix.training.config import parse_config
    from tests.training.helpers import train_and_evaluate as train

    run = tmp_path / "tb"
    train(parse_config({**CONFIG, "steps": 2, "tensorboard": True}), run, progress=False)
    events = EventAccumulator(str(run / "tensorboard"))
    events.Reload()
    losses = [e.value for e in events.Scalars("train/loss")]
    assert losses == pytest.approx([_losses(run)[1], _losses(run)[2]])
    assert "eval/topic/accuracy" in events.Tags()["scalars"]
