"""Trainable parameters and optimizer groups: frozen parameters get no gradients, no optimizer
state and stay out of checkpoints (rebuilt from init_from); each group has its own lr."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from taskmix.errors import CheckpointError, ConfigError
from taskmix.training.callbacks import Callback
from taskmix.training.checkpoint import load_checkpoint
from taskmix.training.config import parse_config
from taskmix.training.runs import load_run
from taskmix.training.trainer import train
from tests.training.helpers import tiny

FF = "decoder.block.*.layer.2.*"  # the decoder's feed-forward: the only part trained below


def _losses(run):
    lines = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A run to start from (every parameter trained)."""
    run = tmp_path_factory.mktemp("pretrained") / "run"
    train(parse_config(tiny(steps=2)), run, progress=False)
    return run


def _frozen_config(pretrained, **changes):
    model = {"init_from": str(pretrained), "overrides": {}, "trainable": [FF]}
    return parse_config(tiny(model=model, **changes))


class Inspect(Callback):
    """Records, after each step, the optimizer's lrs and which parameters hold state."""

    def __init__(self):
        self.lrs, self.with_state = [], set()

    def on_step_end(self, ctx):
        self.lrs.append([g["lr"] for g in ctx.optimizer.param_groups])
        names = {id(p): n for n, p in ctx.model.named_parameters()}
        self.with_state |= {names[id(p)] for p in ctx.optimizer.state}


def test_frozen_parameters_get_no_gradients_no_state_and_do_not_change(tmp_path, pretrained):
    inspect = Inspect()
    run = tmp_path / "frozen"
    train(_frozen_config(pretrained, steps=3), run, progress=False, callbacks=[inspect])
    start, _, _ = load_run(pretrained)
    model, _, _ = load_run(run)
    trained = {n for n, p in model.named_parameters() if "layer.2." in n and "decoder" in n}
    assert trained and inspect.with_state == trained
    for (name, before), after in zip(start.named_parameters(), model.parameters(), strict=True):
        assert torch.equal(before, after) != (name in trained), name

    # one step by hand: autograd computes no gradient for a frozen parameter
    from taskmix.training.trainable import select_trainable

    select_trainable(model, [FF])
    model.train()
    batch = {
        "encoder_input_tokens": torch.tensor([[5, 6, 1]]),
        "decoder_input_tokens": torch.tensor([[0, 7, 8]]),
        "decoder_target_tokens": torch.tensor([[7, 8, 1]]),
    }
    model(**batch).loss.backward()
    for name, param in model.named_parameters():
        assert (param.grad is not None) == (name in trained), name


def test_checkpoints_hold_only_trained_tensors_and_resume_exactly(tmp_path, pretrained):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_frozen_config(pretrained, steps=4), straight, progress=False)
    train(_frozen_config(pretrained, steps=2), resumed, progress=False)
    train(_frozen_config(pretrained, steps=4), resumed, progress=False)
    assert _losses(resumed) == pytest.approx(_losses(straight), abs=1e-6)

    full = pretrained / "checkpoints" / "step-00000002"
    part = straight / "checkpoints" / "step-00000004"
    assert (part / "model.safetensors").stat().st_size < (
        full / "model.safetensors"
    ).stat().st_size / 3
    assert (part / "optimizer.pt").stat().st_size < (full / "optimizer.pt").stat().st_size / 2
    saved = load_file(part / "model.safetensors")
    assert saved and all(k.startswith("decoder.block.") and ".layer.2." in k for k in saved)
    state = json.loads((part / "state.json").read_text())
    assert state["frozen"]["init_from"] == str(full.resolve())
    assert "shared.weight" in state["frozen"]["keys"]

    a, b = load_run(straight)[0], load_run(resumed)[0]
    for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
        assert torch.equal(x, y), name


def test_a_run_with_frozen_parameters_can_be_started_from(tmp_path, pretrained):
    frozen = tmp_path / "frozen"
    train(_frozen_config(pretrained), frozen, progress=False)
    config = parse_config(tiny(model={"init_from": str(frozen), "overrides": {}}))
    train(config, tmp_path / "next", progress=False)
    assert load_run(tmp_path / "next")[0] is not None


def test_frozen_weights_that_differ_from_the_recorded_ones_are_refused(tmp_path, pretrained):
    run = tmp_path / "run"
    train(_frozen_config(pretrained, steps=2), run, progress=False)
    other = load_run(run)[0]
    with torch.no_grad():
        other.shared.weight.add_(1.0)  # as if init_from had changed since
    with pytest.raises(CheckpointError, match="frozen ones come from .*SHA-256 differs"):
        load_checkpoint(run / "checkpoints" / "step-00000002", other)


def test_resuming_with_other_trainable_parameters_is_refused(tmp_path, pretrained):
    run = tmp_path / "run"
    train(_frozen_config(pretrained, steps=2), run, progress=False)
    longer = _frozen_config(pretrained, steps=3)
    with pytest.raises(CheckpointError, match="freezes other parameters"):
        train(longer, run, progress=False, trainable=lambda name, p: "decoder" in name)


def test_without_init_from_a_run_with_frozen_parameters_saves_everything(tmp_path):
    run = tmp_path / "run"
    train(parse_config(tiny(model={"trainable": [FF]})), run, progress=False)
    part = run / "checkpoints" / "step-00000002"
    assert "shared.weight" in load_file(part / "model.safetensors")
    frozen = json.loads((part / "state.json").read_text())["frozen"]
    assert frozen["init_from"] is None and "shared.weight" in frozen["keys"]
    assert load_run(run)[0] is not None


def test_each_group_has_its_own_lr_and_the_schedule_scales_them_alike(tmp_path):
    inspect = Inspect()
    optimizer = {
        "lr": 0.01,
        "schedule": "linear_warmup_inverse_sqrt",
        "warmup_steps": 2,
        "groups": [{"params": ["shared.*", "lm_head.*"], "lr": 0.001}],
    }
    config = parse_config(tiny(steps=3, optimizer=optimizer))
    train(config, tmp_path / "run", progress=False, callbacks=[inspect])
    assert [round(a / b, 9) for a, b in inspect.lrs] == [0.1, 0.1, 0.1]
    assert [b for _, b in inspect.lrs] == pytest.approx([0.005, 0.01, 0.01 * (2 / 2) ** 0.5])


def test_param_groups_first_match_wins_and_every_parameter_is_in_one_group():
    from taskmix.models import build_model, preset
    from taskmix.training.config import OptimizerConfig
    from taskmix.training.trainable import param_groups, select_trainable

    model = build_model(preset("tiny", vocab_size=128, d_model=16, d_ff=16, num_layers=1))
    params = select_trainable(model, ["decoder.*", "shared.*"])
    groups = param_groups(
        model,
        params,
        OptimizerConfig(
            lr=0.1,
            groups=[{"params": ["*layer_norm*"], "lr": 0.2}, {"params": ["decoder.*"], "lr": 0.05}],
        ),
    )
    assert [g["name"] for g in groups] == ["groups[0]", "groups[1]", "default"]
    assert [g["lr_scale"] for g in groups] == pytest.approx([2.0, 0.5, 1.0])
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in params)
    assert groups[2]["params"] == [model.shared.weight]
    assert all(p.ndim == 1 for p in groups[0]["params"])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"model": {"trainable": ["decoder.blok.*"]}}, r"model.trainable\[0\]: 'decoder.blok.\*'"),
        (
            {"model": {"trainable": ["decoder.*"]}, "optimizer": {"groups": [{"params": "enc*"}]}},
            r"optimizer.groups\[0\].params\[0\]: 'enc\*' matches no trained parameter",
        ),
    ],
)
def test_patterns_that_match_nothing_fail_before_the_run_folder_exists(tmp_path, changes, message):
    config = parse_config(tiny(**changes))
    with pytest.raises(ConfigError, match=message):
        train(config, tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()
    with pytest.raises(ConfigError, match="model.trainable: .*empty list trains nothing"):
        parse_config(tiny(model={"trainable": []}))
