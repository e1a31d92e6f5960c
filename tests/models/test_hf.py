"""Hugging Face checkpoint interop: logit parity both ways, safe loading, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from taskmix.errors import TaskmixError
from taskmix.models import T5Model, build_model
from taskmix.models.hf import CheckpointError, load_hf_checkpoint, save_hf_checkpoint
from tests.models.helpers import tiny_config

transformers = pytest.importorskip("transformers")
transformers.utils.logging.set_verbosity_error()

FLAVOURS = {
    "v1.0": {"feed_forward_proj": "relu", "tie_word_embeddings": True},
    "v1.1": {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
}


def _hf_model(flavour: str):
    config = transformers.T5Config(
        vocab_size=96,
        d_model=32,
        d_kv=8,
        d_ff=64,
        num_layers=2,
        num_decoder_layers=3,
        num_heads=4,
        relative_attention_num_buckets=8,
        relative_attention_max_distance=16,
        **FLAVOURS[flavour],
    )
    model = transformers.T5ForConditionalGeneration(config).eval()
    if flavour == "v1.1":  # transformers 5 ties lm_head in memory; give it its own weights
        model.lm_head.weight = torch.nn.Parameter(torch.randn(96, 32))
    return model


def _inputs():
    x = torch.randint(2, 96, (3, 24))
    x[1, 15:] = 0  # padding
    return x, torch.randint(2, 96, (3, 20))


def _hf_logits(hf, x, y):
    with torch.no_grad():
        return hf(input_ids=x, attention_mask=(x > 0).long(), decoder_input_ids=y).logits


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_hf_checkpoint_loads_with_matching_logits(flavour, tmp_path):
    hf = _hf_model(flavour)
    hf.save_pretrained(tmp_path, safe_serialization=True)
    ours = load_hf_checkpoint(tmp_path)
    assert ours.config.tie_word_embeddings == (flavour == "v1.0")
    assert ours.config.num_decoder_layers == 3
    x, y = _inputs()
    with torch.no_grad():
        diff = (ours(x, y).logits - _hf_logits(hf, x, y)).abs().max().item()
    assert diff <= 1e-4


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_our_checkpoint_loads_in_transformers(flavour, tmp_path):
    ours = T5Model(tiny_config(num_decoder_layers=3, **FLAVOURS[flavour])).eval()
    save_hf_checkpoint(ours, tmp_path / "ckpt")
    hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "ckpt").eval()
    x, y = _inputs()
    with torch.no_grad():
        ours_logits = ours(x, y).logits
        assert (ours_logits - _hf_logits(hf, x, y)).abs().max().item() <= 1e-4
        # and the loss agrees with HF's (padding -> -100)
        labels = y.clone()
        labels[2, 12:] = 0
        theirs = hf(
            input_ids=x, attention_mask=(x > 0).long(), labels=labels.masked_fill(labels == 0, -100)
        )
        decoder_in = torch.nn.functional.pad(labels, (1, 0))[:, :-1]
        assert ours(x, decoder_in, labels).loss.item() == pytest.approx(
            theirs.loss.item(), abs=1e-4
        )
    again = load_hf_checkpoint(tmp_path / "ckpt")
    assert all(
        torch.equal(a, b)
        for a, b in zip(again.state_dict().values(), ours.state_dict().values(), strict=True)
    )


def test_shared_variant_exports_to_transformers_and_back(tmp_path):
    ours = T5Model(tiny_config(shared_encoder_decoder=True)).eval()
    save_hf_checkpoint(ours, tmp_path / "ckpt")
    hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "ckpt").eval()
    x, y = _inputs()
    with torch.no_grad():
        assert (ours(x, y).logits - _hf_logits(hf, x, y)).abs().max().item() <= 1e-4
    back = load_hf_checkpoint(tmp_path / "ckpt")
    assert back.config.shared_encoder_decoder
    assert back.num_parameters() == ours.num_parameters()
    # a file whose "shared" weights disagree is refused
    weights = load_file(tmp_path / "ckpt" / "model.safetensors")
    weights["decoder.block.0.layer.0.SelfAttention.q.weight"] += 1.0
    save_file(weights, tmp_path / "ckpt" / "model.safetensors")
    with pytest.raises(CheckpointError, match="differs from"):
        load_hf_checkpoint(tmp_path / "ckpt")


def test_decoder_only_round_trip(tmp_path):
    model = build_model(tiny_config(architecture="prefix_lm")).eval()
    save_hf_checkpoint(model, tmp_path / "lm")
    back = load_hf_checkpoint(tmp_path / "lm")
    tokens = torch.randint(2, 96, (2, 9))
    with torch.no_grad():
        assert torch.equal(back(tokens).logits, model(tokens).logits)


def test_sharded_checkpoint(tmp_path):
    model = T5Model(tiny_config()).eval()
    save_hf_checkpoint(model, tmp_path / "one")
    weights = load_file(tmp_path / "one" / "model.safetensors")
    names = sorted(weights)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    folder = tmp_path / "sharded"
    folder.mkdir()
    (folder / "config.json").write_text((tmp_path / "one" / "config.json").read_text())
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: weights[k] for k in keys}, folder / shard)
        weight_map.update(dict.fromkeys(keys, shard))
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    back = load_hf_checkpoint(folder)
    x, y = _inputs()
    with torch.no_grad():
        assert torch.equal(back(x, y).logits, model(x, y).logits)


def test_save_is_atomic_and_does_not_clobber(tmp_path):
    model = T5Model(tiny_config())
    save_hf_checkpoint(model, tmp_path / "ckpt")
    with pytest.raises(CheckpointError, match="already exists"):
        save_hf_checkpoint(model, tmp_path / "ckpt")
    save_hf_checkpoint(model, tmp_path / "ckpt", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp folders left behind


def test_wrong_architecture_corrupt_file_and_shape_errors(tmp_path):
    model = T5Model(tiny_config())
    folder = save_hf_checkpoint(model, tmp_path / "ckpt")

    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(
        json.dumps({**config, "model_type": "bert", "architectures": ["BertModel"]})
    )
    with pytest.raises(TaskmixError, match="not a T5 checkpoint"):
        load_hf_checkpoint(folder)

    (folder / "config.json").write_text(json.dumps({**config, "vocab_size": 120}))
    with pytest.raises(CheckpointError, match=r"shared.weight has shape \(96, 32\).*vocabulary"):
        load_hf_checkpoint(folder)

    (folder / "config.json").write_text(json.dumps({**config, "num_layers": 3}))
    with pytest.raises(CheckpointError, match="missing"):
        load_hf_checkpoint(folder)

    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="vocabulary"):
        load_hf_checkpoint(folder, vocab_size=200)

    (folder / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json header")
    with pytest.raises(CheckpointError, match="corrupt"):
        load_hf_checkpoint(folder)

    (folder / "config.json").write_text("{not json")
    with pytest.raises(CheckpointError, match="config.json: not valid JSON"):
        load_hf_checkpoint(folder)

    with pytest.raises(CheckpointError, match="not a checkpoint folder"):
        load_hf_checkpoint(tmp_path / "missing")


def test_pickle_checkpoints_are_refused_unless_weights_only(tmp_path):
    model = T5Model(tiny_config())
    folder = save_hf_checkpoint(model, tmp_path / "ckpt")
    weights = load_file(folder / "model.safetensors")
    (folder / "model.safetensors").unlink()
    torch.save(weights, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="safetensors"):
        load_hf_checkpoint(folder)
    back = load_hf_checkpoint(folder, allow_bin=True)
    assert torch.equal(back.shared.weight, model.shared.weight)

    class Evil:  # an object weights_only refuses to unpickle
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save({"x": Evil()}, folder / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="cannot be loaded safely"):
        load_hf_checkpoint(folder, allow_bin=True)
