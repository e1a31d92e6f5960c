import json

import pytest
import torch

from taskmix.training.checkpoint import (
    CheckpointError,
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)


def Tied(n=64):
    """A very small T5.1.0 (tied input and output embeddings)."""
    from taskmix.models import build_model, preset

    config = preset(
        "tiny", version="1.0", vocab_size=n, d_model=8, d_ff=8, d_kv=4, num_heads=2, num_layers=1
    )
    return build_model(config)


def _save(tmp_path, step, model=None):
    model = model or Tied()
    opt = torch.optim.AdamW(model.parameters())
    model.shared.weight.sum().backward()
    opt.step()
    return save_checkpoint(
        tmp_path, step, model, opt, {"data": {"x": step}, "rng": rng_state()}
    ), model


def test_round_trip_restores_weights_optimizer_and_state(tmp_path):
    path, model = _save(tmp_path, 7)
    fresh = Tied()
    opt = torch.optim.AdamW(fresh.parameters())
    state = load_checkpoint(path, fresh, opt)
    assert state["step"] == 7 and state["data"] == {"x": 7}
    assert torch.equal(fresh.shared.weight, model.shared.weight)
    assert opt.state_dict()["state"][0]["step"] == 1


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_manifest"])
def test_damage_is_detected_and_skipped_for_resume(tmp_path, damage):
    good, _ = _save(tmp_path, 1)
    bad, _ = _save(tmp_path, 2)
    weights = bad / "model.safetensors"
    if damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:-10])
    elif damage == "flip":
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    else:
        (bad / "manifest.json").unlink()
    with pytest.raises(CheckpointError, match="truncated|corrupted|incomplete"):
        load_checkpoint(bad, Tied())
    latest, problems = latest_valid_checkpoint(tmp_path)
    assert latest == good and len(problems) == 1


def test_another_architecture_is_a_clear_error(tmp_path):
    path, _ = _save(tmp_path, 1)
    with pytest.raises(CheckpointError, match="shape"):
        load_checkpoint(path, Tied(n=96))


def test_interrupted_save_leaves_no_checkpoint(tmp_path, monkeypatch):
    import taskmix.training.checkpoint as ckpt

    def boom(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ckpt.torch, "save", boom)
    with pytest.raises(KeyboardInterrupt):
        _save(tmp_path, 3)
    assert list_checkpoints(tmp_path) == [] and list(tmp_path.iterdir()) == []


def test_prune_keeps_last_and_protected(tmp_path):
    for step in (1, 2, 3, 4):
        _save(tmp_path, step)
    prune_checkpoints(tmp_path, keep_last=2, protected={"step-00000001"})
    assert [p.name for p in list_checkpoints(tmp_path)] == [
        "step-00000001",
        "step-00000003",
        "step-00000004",
    ]


def test_rng_state_round_trips_through_json():
    state = json.loads(json.dumps(rng_state()))
    import random

    import numpy as np

    a, b, c = torch.rand(3), np.random.rand(3), random.random()
    set_rng_state(state)
    assert torch.equal(torch.rand(3), a)
    assert np.array_equal(np.random.rand(3), b) and random.random() == c


def test_rng_state_on_cpu_only_has_no_cuda_part_and_ignores_one(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    state = rng_state()
    assert "cuda" not in state
    set_rng_state({**state, "cuda": [[1, 2, 3]]})  # saved on a GPU machine: skipped here


def test_cuda_rng_states_are_saved_and_restored(monkeypatch):
    """Every GPU's generator travels with the checkpoint (faked, to run without a GPU)."""
    saved_states = [torch.arange(16, dtype=torch.uint8), torch.ones(16, dtype=torch.uint8)]
    restored = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: saved_states)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", lambda states: restored.extend(states))
    state = json.loads(json.dumps(rng_state()))
    assert state["cuda"] == [s.tolist() for s in saved_states]
    set_rng_state(state)
    assert [torch.equal(a, b) for a, b in zip(restored, saved_states, strict=True)] == [True] * 2


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_cuda_dropout_stream_resumes():
    state = rng_state()
    a = torch.rand(4, device="cuda")
    set_rng_state(json.loads(json.dumps(state)))
    assert torch.equal(torch.rand(4, device="cuda"), a)
