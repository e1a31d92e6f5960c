"""Adapter-only runs: a bottleneck adapter or LoRA on a frozen base from ``model.init_from``;
checkpoints hold the adapter only, load_run / resume rebuild base + adapter, another base is
refused, and several adapters switch on one base."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from safetensors.torch import load_file

from taskmix.errors import CheckpointError, ConfigError
from taskmix.training.adapter_runs import adapter_tensors, swap_adapter
from taskmix.training.callbacks import Callback
from taskmix.training.config import parse_config
from taskmix.training.plan import plan_run
from taskmix.training.runs import load_run
from taskmix.training.trainer import train
from tests.training.helpers import tiny

BOTTLENECK = {"kind": "bottleneck", "dim": 4}
LORA = {"kind": "lora", "rank": 2, "target_modules": ["q", "v", "wo"]}


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    run = tmp_path_factory.mktemp("base") / "run"
    train(parse_config(tiny(steps=2)), run, progress=False)
    return run


def _config(base, adapter, **changes):
    model = {"init_from": str(base), "overrides": {}, "adapter": adapter}
    return parse_config(tiny(model=model, **changes))


class Keep(Callback):
    """Keeps the trained model (in memory) at the end of each step."""

    model = None

    def on_step_end(self, ctx):
        self.model = ctx.model


def _logits(model):
    torch.manual_seed(0)
    inputs = torch.randint(3, 200, (2, 7))
    targets = torch.randint(3, 200, (2, 5))
    model.eval()
    with torch.no_grad():
        return model(inputs, targets).logits


@pytest.mark.parametrize("adapter", [BOTTLENECK, LORA], ids=["bottleneck", "lora"])
def test_adapter_run_saves_only_the_adapter_and_loads_as_trained(tmp_path, base, adapter):
    keep, run = Keep(), tmp_path / "adapter"
    train(_config(base, adapter), run, progress=False, callbacks=[keep])
    part = run / "checkpoints" / "step-00000002"
    full = base / "checkpoints" / "step-00000002"
    saved = load_file(part / "model.safetensors")
    kind = ".adapter." if adapter is BOTTLENECK else ".lora_"
    assert saved and any(kind in k for k in saved)
    assert all(kind in k or "layer_norm" in k for k in saved)
    ratio = (part / "model.safetensors").stat().st_size / (
        full / "model.safetensors"
    ).stat().st_size
    assert ratio < 0.2
    state = json.loads((part / "state.json").read_text())
    assert state["frozen"]["init_from"] == str(full.resolve())

    loaded = load_run(run)[0]
    assert torch.equal(_logits(loaded), _logits(keep.model))
    assert not torch.allclose(_logits(loaded), _logits(load_run(base)[0]))  # it learned


def test_adapter_run_resumes_exactly(tmp_path, base):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    train(_config(base, LORA, steps=4), straight, progress=False)
    train(_config(base, LORA, steps=2), resumed, progress=False)
    train(_config(base, LORA, steps=4), resumed, progress=False)
    assert torch.equal(_logits(load_run(straight)[0]), _logits(load_run(resumed)[0]))


def test_an_adapter_on_another_base_is_refused(tmp_path):
    base = tmp_path / "base"
    train(parse_config(tiny(steps=2)), base, progress=False)
    train(_config(base, BOTTLENECK), tmp_path / "adapter", progress=False)
    shutil.rmtree(base)  # the base is retrained in the same folder: other weights
    train(parse_config(tiny(steps=2, seed=11)), base, progress=False)
    with pytest.raises(CheckpointError, match="SHA-256 differs"):
        load_run(tmp_path / "adapter")


def test_adapters_switch_on_one_base_without_reloading_it(tmp_path, base):
    one, two = tmp_path / "one", tmp_path / "two"
    train(_config(base, LORA), one, progress=False)
    train(_config(base, LORA, seed=5, data={"mixture": "topic"}), two, progress=False)
    expected = {run: _logits(load_run(run)[0]) for run in (one, two)}
    model = load_run(one)[0]
    tensors = {run: adapter_tensors(model, run) for run in (one, two)}
    assert not torch.allclose(expected[one], expected[two])
    for run in (two, one, two):
        swap_adapter(model, tensors[run])
        assert torch.allclose(_logits(model), expected[run], atol=1e-6)

    other_base = load_run(base)[0]  # no adapter: its parameters do not fit
    with pytest.raises(CheckpointError, match="does not fit"):
        swap_adapter(other_base, tensors[one])
    with torch.no_grad():
        model.shared.weight.add_(1.0)
    with pytest.raises(CheckpointError, match="another base"):
        adapter_tensors(model, one)


@pytest.mark.parametrize(
    ("adapter", "message"),
    [
        ({"kind": "lora", "rank": 0}, r"model\.adapter\.rank: expected a positive integer"),
        ({"kind": "lora", "target_modules": ["qq"]}, r"model\.adapter\.target_modules: 'qq'"),
        ({"kind": "bottleneck", "dim": 8, "size": 3}, r"model\.adapter\.size: unknown key"),
        ({"kind": "prefix"}, r"model\.adapter\.kind: expected one of"),
        ({"kind": "lora", "target_modules": ["wi"]}, r"target_modules: .wi. names no"),
        ({"kind": "bottleneck"}, r"model\.adapter: give exactly one of 'dim'"),
    ],
)
def test_bad_adapter_configs_fail_before_the_run_folder_exists(tmp_path, base, adapter, message):
    run = tmp_path / "run"
    with pytest.raises(ConfigError, match=message):
        train(_config(base, adapter), run, progress=False)
    assert not run.exists()


def test_an_adapter_needs_init_from():
    with pytest.raises(ConfigError, match=r"model\.adapter: needs model\.init_from"):
        plan_run(parse_config(tiny(model={"adapter": BOTTLENECK})))


def test_the_adapter_example_parses_and_plans(base):
    from pathlib import Path

    from taskmix.training.config import load_config

    example = Path(__file__).parents[2] / "examples" / "finetune_adapter.yaml"
    config = load_config(
        example,
        [f"model.init_from={base}", "vocabulary=byte", "data.mixture=topic", "eval.tasks=[topic]"]
        + ["checkpoint.keep_best=[average]"],
    )
    assert config.model.adapter["kind"] == "bottleneck"
    plan_run(config)


def test_model_trainable_replaces_the_adapters_default(tmp_path, base):
    run = tmp_path / "run"
    config = _config(base, LORA)
    config.model.trainable = ["*.lora_B.*"]
    train(config, run, progress=False)
    saved = load_file(run / "checkpoints" / "step-00000002" / "model.safetensors")
    assert saved and all(".lora_B." in k for k in saved)
    config.model.trainable = ["*.lora_C.*"]
    with pytest.raises(ConfigError, match=r"model\.trainable\[0\]: '\*\.lora_C\.\*' matches no"):
        plan_run(config)


def test_an_adapter_run_cannot_be_init_from(tmp_path, base):
    adapter = tmp_path / "adapter"
    train(_config(base, BOTTLENECK), adapter, progress=False)
    config = parse_config(tiny(model={"init_from": str(adapter), "overrides": {}}))
    with pytest.raises(ConfigError, match="is an adapter run"):
        plan_run(config)
