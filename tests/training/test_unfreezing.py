"""Gradual unfreezing (T5 §3.5.2): blocks train top-down in episodes; the rest throughout;
the schedule is in the log; a killed run resumes in the right episode."""

from __future__ import annotations

import json

import pytest
import torch

from taskmix.training.callbacks import Callback
from taskmix.training.config import parse_config
from taskmix.training.trainer import train
from taskmix.training.unfreezing import block_index, episode
from tests.training.helpers import tiny

LAYERS = 3
STEPS = 6  # 3 episodes of 2 steps


def config():
    model = {"overrides": {**tiny()["model"]["overrides"], "num_layers": LAYERS}}
    optimizer = {"name": "adamw", "lr": 0.003, "gradual_unfreezing": True}
    checkpoint = {"every": 2, "keep_last": 5}
    return parse_config(tiny(steps=STEPS, model=model, optimizer=optimizer, checkpoint=checkpoint))


class Snapshots(Callback):
    """The weights at the start and after every step; optionally stops the run (a kill)."""

    def __init__(self, stop_before: int | None = None):
        self.stop_before, self.weights = stop_before, {}

    def _take(self, model, step):
        self.weights[step] = {n: p.detach().clone() for n, p in model.named_parameters()}

    def on_train_start(self, ctx):
        self._take(ctx.model, ctx.step - 1)

    def on_step_start(self, ctx):
        if ctx.step == self.stop_before:
            raise KeyboardInterrupt

    def on_step_end(self, ctx):
        self._take(ctx.model, ctx.step)


def changed(before: dict, after: dict) -> set[str]:
    return {n for n in before if not torch.equal(before[n], after[n])}


def test_episodes_split_the_run_and_blocks_are_named():
    assert [episode(s, 6, 3) for s in range(1, 7)] == [0, 0, 1, 1, 2, 2]
    assert [episode(s, 7, 3) for s in range(1, 8)] == [0, 0, 0, 1, 1, 2, 2]
    assert episode(10, 4, 2) == 1  # past the configured steps: the last episode
    assert block_index("encoder.block.12.layer.1.DenseReluDense.wo.weight") == 12
    assert block_index("decoder.final_layer_norm.weight") is None
    assert block_index("shared.weight") is None


def test_blocks_unfreeze_top_down_while_the_rest_trains_throughout(tmp_path):
    snapshots = Snapshots()
    train(config(), tmp_path / "run", progress=False, callbacks=[snapshots])
    w = snapshots.weights
    names = set(w[0])
    blocks = {i: {n for n in names if block_index(n) == i} for i in range(LAYERS)}
    always = {n for n in names if block_index(n) is None}
    outside = {"shared.weight", "lm_head.weight"}  # embedding, output layer (T5.1.1: untied)
    assert always == outside | {
        "encoder.final_layer_norm.weight",
        "decoder.final_layer_norm.weight",
    }
    episode0, episode1, episode2 = changed(w[0], w[2]), changed(w[2], w[4]), changed(w[4], w[6])
    assert always <= episode0 and always <= episode1 and always <= episode2
    assert blocks[2] <= episode0 and not (blocks[0] | blocks[1]) & episode0
    assert (blocks[1] | blocks[2]) <= episode1 and not blocks[0] & episode1
    assert names == episode2  # the relative position bias (block 0) trains last
    assert any("relative_attention_bias" in n for n in blocks[0])


def test_the_schedule_is_logged_and_a_killed_run_resumes_in_its_episode(tmp_path):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(config(), straight, progress=False)
    with pytest.raises(KeyboardInterrupt):  # killed before step 4, after the step-2 checkpoint
        train(config(), resumed, progress=False, callbacks=[Snapshots(stop_before=4)])
    after = Snapshots()
    train(config(), resumed, progress=False, callbacks=[after])
    assert min(after.weights) == 2  # resumed from the step-2 checkpoint

    def lines(run):
        return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]

    schedule = [(r["step"], r["unfrozen_blocks"]) for r in lines(straight) if "episode" in r]
    assert schedule == [(1, 1), (3, 2), (5, 3)]
    # the resumed process starts at step 3, in episode 1, and says so
    assert [(r["step"], r["unfrozen_blocks"]) for r in lines(resumed) if "episode" in r][-2:] == [
        (3, 2),
        (5, 3),
    ]
    losses = {r["step"]: r["loss"] for r in lines(straight) if "loss" in r}
    again = {r["step"]: r["loss"] for r in lines(resumed) if "loss" in r}
    assert again.keys() == losses.keys()
    for step, loss in losses.items():
        assert abs(again[step] - loss) < 1e-6, step
