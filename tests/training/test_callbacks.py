"""Callbacks at step boundaries, in the resumable state: gradual unfreezing resumes exactly."""

from __future__ import annotations

import json

import pytest
import torch

from taskmix.training.callbacks import Callback, Callbacks
from taskmix.training.config import parse_config
from taskmix.training.runs import load_run
from taskmix.training.trainer import train
from tests.training.helpers import tiny


def _ff(name: str) -> bool:
    return name.startswith("decoder.block.") and ".layer.2." in name


class Unfreeze(Callback):
    """Gradual unfreezing in miniature: the decoder's feed-forward is frozen until step ``at``;
    counts the steps it saw and notes, per step, whether that layer had optimizer state."""

    def __init__(self, at: int):
        self.at, self.unfrozen, self.steps, self.had_state = at, False, 0, {}

    def _apply(self, model):
        for name, param in model.named_parameters():
            if _ff(name):
                param.requires_grad_(self.unfrozen)

    def on_train_start(self, ctx):
        self._apply(ctx.model)  # after a resume too: requires_grad is not in the checkpoint

    def on_step_start(self, ctx):
        if ctx.step == self.at:
            self.unfrozen = True
            self._apply(ctx.model)
            ctx.log(unfrozen="decoder feed-forward")

    def on_step_end(self, ctx):
        self.steps, self.model = self.steps + 1, ctx.model
        ff = [p for n, p in ctx.model.named_parameters() if _ff(n)]
        self.had_state[ctx.step] = any(p in ctx.optimizer.state for p in ff)

    def state_dict(self):
        return {"unfrozen": self.unfrozen, "steps": self.steps}

    def load_state_dict(self, state):
        self.unfrozen, self.steps = state["unfrozen"], state["steps"]


def _log(run):
    return [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]


def test_gradual_unfreezing_resumes_exactly(tmp_path):
    config = {"checkpoint": {"every": 3}, "optimizer": {"name": "adamw", "lr": 0.003}}
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    first = Unfreeze(at=2)
    train(parse_config(tiny(steps=6, **config)), straight, progress=False, callbacks=[first])
    assert first.had_state == {1: False, 2: True, 3: True, 4: True, 5: True, 6: True}

    train(parse_config(tiny(steps=3, **config)), resumed, progress=False, callbacks=[Unfreeze(2)])
    second = Unfreeze(at=2)
    train(parse_config(tiny(steps=6, **config)), resumed, progress=False, callbacks=[second])
    assert second.steps == 6 and second.unfrozen
    assert second.state_dict() == first.state_dict()

    a, b = _log(straight), _log(resumed)
    losses = {r["step"]: r["loss"] for r in a if "loss" in r}
    assert {r["step"]: r["loss"] for r in b if "loss" in r} == pytest.approx(losses, abs=1e-6)
    assert sorted(losses) == [1, 2, 3, 4, 5, 6]
    assert [r for r in b if "unfrozen" in r] == [{"step": 2, "unfrozen": "decoder feed-forward"}]
    saved = [
        json.loads((run / "checkpoints" / "step-00000006" / "state.json").read_text())
        for run in (straight, resumed)
    ]
    assert saved[0]["callbacks"] == saved[1]["callbacks"] == {"Unfreeze": first.state_dict()}
    x, y = load_run(straight)[0].state_dict(), load_run(resumed)[0].state_dict()
    for name, tensor in x.items():
        torch.testing.assert_close(y[name], tensor, rtol=0, atol=1e-6, msg=name)


def test_callback_names_must_differ():
    with pytest.raises(ValueError, match=r"names \['Unfreeze'\] are used twice"):
        Callbacks([Unfreeze(1), Unfreeze(2)])

    class Named(Unfreeze):
        name = "second"

    assert set(Callbacks([Unfreeze(1), Named(2)]).state_dict()) == {"Unfreeze", "second"}


DDP_SCRIPT = """
import json, sys
from taskmix.training.config import parse_config
from taskmix.training.trainer import train
from tests.training.helpers import tiny
from tests.training.test_callbacks import Unfreeze

unfreeze = Unfreeze(at=2)
train(parse_config(tiny(steps=3)), sys.argv[1], progress=False, callbacks=[unfreeze])
model = unfreeze.model
ff = sum(float(p.double().sum()) for n, p in model.named_parameters() if ".layer.2." in n)
print(json.dumps({"had_state": unfreeze.had_state, "ff": ff}))
"""


def test_unfreezing_under_ddp_rewraps_the_model(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    script = tmp_path / "ddp_unfreeze.py"
    script.write_text(DDP_SCRIPT)
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "src"), str(root)])}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    result = subprocess.run(
        [*cmd, str(script), str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [r["had_state"] for r in ranks] == [{"1": False, "2": True, "3": True}] * 2
    assert ranks[0]["ff"] == ranks[1]["ff"]  # the unfrozen layer's gradients were synced
