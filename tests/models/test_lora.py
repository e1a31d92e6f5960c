"""LoRA: step-0 equality, frozen-base gradients, decoding runs it, merge/unmerge, bad configs,
the fused attention projections."""

from __future__ import annotations

import pytest
import torch

from taskmix.errors import ConfigError
from taskmix.models import DecoderOnlyLM, T5Model
from taskmix.models import lora as lora_module
from taskmix.models.adapters import freeze_all_but
from taskmix.models.generate import greedy_decode
from taskmix.models.layers import Attention
from taskmix.models.lora import (
    LoRAConfig,
    LoRALinear,
    add_lora,
    is_lora_parameter,
    lora_layers,
    merge_lora,
    unload_lora,
    unmerge_lora,
)
from taskmix.models.packed import is_plain_linear
from tests.models.helpers import tiny_config
from tests.models.test_decoding_modules import (  # noqa: F401 (fast_paths is a fixture)
    V11,
    _assert_consistent,
    _encoder_decoder,
    fast_paths,
)

ALL_T5_10 = ["q", "k", "v", "o", "wi", "wo"]
ALL_T5_11 = ["q", "k", "v", "o", "wi_0", "wi_1", "wo"]


def _batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = torch.randint(2, 96, (3, 7))
    targets = torch.randint(2, 96, (3, 5))
    return inputs, torch.nn.functional.pad(targets, (1, 0))[:, :-1], targets


def _randomise(model: torch.nn.Module, std: float = 0.3) -> None:
    with torch.no_grad():
        for layer in lora_layers(model):
            layer.lora_B.weight.normal_(std=std)


@pytest.mark.parametrize(
    ("flavour", "targets"),
    [({}, ALL_T5_10), (V11, ALL_T5_11), ({"shared_encoder_decoder": True}, ["q", "v"])],
)
def test_lora_model_equals_base_at_step_0(flavour, targets):
    model = T5Model(tiny_config(**flavour)).eval()
    batch = _batch()
    before = model(*batch).logits
    base_keys = set(model.state_dict())
    added = add_lora(model, LoRAConfig(rank=4, alpha=8, target_modules=targets))
    assert added and all(is_lora_parameter(n) for n in added)
    assert all(n.endswith((".lora_A.weight", ".lora_B.weight")) for n in added)
    assert base_keys <= set(model.state_dict())  # base names (HF keys) unchanged
    assert torch.equal(model(*batch).logits, before)
    q = model.decoder.block[0].layer[1].EncDecAttention.q
    assert isinstance(q, LoRALinear) == ("q" in targets)


def test_only_the_targets_are_wrapped():
    model = T5Model(tiny_config())
    add_lora(model, LoRAConfig(rank=2, target_modules=["v", "wo"]))
    names = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert names == {"v", "wo"}
    attention = model.encoder.block[0].layer[0].SelfAttention
    assert type(attention.q) is not LoRALinear and isinstance(attention.v, LoRALinear)
    assert attention.v.scaling == 16.0 / 2


def test_gradients_reach_only_lora():
    model = T5Model(tiny_config(dropout_rate=0.0))
    added = add_lora(model, LoRAConfig(rank=4, dropout=0.1, target_modules=ALL_T5_10))
    freeze_all_but(model, added)
    _randomise(model)  # a zero B gives A no gradient
    model.train()
    model(*_batch()).loss.backward()
    for name, p in model.named_parameters():
        if name in added:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_decoding_runs_lora(flavour, fast_paths):  # noqa: F811
    model, inputs = _encoder_decoder(flavour)
    plain = _assert_consistent(model, inputs)
    add_lora(
        model, LoRAConfig(rank=4, target_modules=ALL_T5_11 if flavour == "v1.1" else ALL_T5_10)
    )
    assert torch.equal(_assert_consistent(model, inputs), plain)
    _randomise(model)
    adapted = _assert_consistent(model, inputs)
    assert not torch.equal(adapted, plain)
    merge_lora(model)  # merged: same outputs through the (plain) base weights
    assert torch.equal(_assert_consistent(model, inputs), adapted)
    unmerge_lora(model)
    assert torch.equal(_assert_consistent(model, inputs), adapted)
    unload_lora(model)  # plain projections again: the fast paths apply, same output
    assert not lora_layers(model)
    assert is_plain_linear(model.decoder.block[0].layer[0].SelfAttention.q)
    assert torch.equal(_assert_consistent(model, inputs), adapted)


def test_merged_layer_matches_to_fp32_rounding():
    torch.manual_seed(3)
    layer = LoRALinear(torch.nn.Linear(64, 48, bias=False), rank=4, alpha=16)
    torch.nn.init.normal_(layer.lora_B.weight, std=0.3)
    x = torch.randn(10, 64)
    weight = layer.weight.detach().clone()
    with torch.no_grad():
        unmerged = layer(x)
        layer.merge()
        torch.testing.assert_close(layer(x), unmerged, atol=1e-5, rtol=1e-5)
        layer.unmerge()
    torch.testing.assert_close(layer.weight.detach(), weight, atol=1e-6, rtol=0)


def test_merge_and_unmerge_are_exact():
    # float64: the check is of the algebra, not of fp32 rounding through a dozen layers
    model = T5Model(tiny_config(**V11)).double().eval()
    add_lora(model, LoRAConfig(rank=4, alpha=32, target_modules=ALL_T5_11))
    _randomise(model)
    weights = {n: p.detach().clone() for n, p in model.named_parameters()}
    batch = _batch()
    with torch.no_grad():
        unmerged = model(*batch).logits
        merge_lora(model)
        assert all(layer.merged for layer in lora_layers(model))
        merged = model(*batch).logits
        torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
        changed = [n for n, p in model.named_parameters() if not torch.equal(p, weights[n])]
        assert changed and not any(is_lora_parameter(n) for n in changed)
        merge_lora(model)  # a second merge does nothing
        torch.testing.assert_close(model(*batch).logits, merged, atol=0, rtol=0)
        unmerge_lora(model)
        for name, p in model.named_parameters():
            torch.testing.assert_close(p, weights[name], atol=1e-5, rtol=0)
        torch.testing.assert_close(model(*batch).logits, unmerged, atol=1e-5, rtol=1e-5)


def test_decoder_only_models_take_lora():
    model = DecoderOnlyLM(tiny_config(architecture="prefix_lm")).eval()
    tokens = torch.randint(2, 96, (4, 6))
    tokens[1, 3:] = 0
    with torch.no_grad():
        model.shared.weight[0] = 0.0
        model.shared.weight.mul_(0.05)
    before = model(tokens).logits
    add_lora(model, LoRAConfig(rank=2, target_modules=["q", "v", "wo"]))
    assert torch.equal(model(tokens).logits, before)
    plain = greedy_decode(model, tokens, max_length=5)
    _randomise(model, std=1.0)
    cached = greedy_decode(model, tokens, max_length=5)
    assert torch.equal(cached, greedy_decode(model, tokens, max_length=5, use_cache=False))
    assert not torch.equal(cached, plain)


def test_set_dropout_leaves_lora_dropout_alone():
    model = T5Model(tiny_config())
    add_lora(model, LoRAConfig(rank=2, dropout=0.05))
    model.set_dropout(0.3)
    assert {layer.dropout for layer in lora_layers(model)} == {0.05}


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (LoRAConfig(rank=0), "lora.rank"),
        (LoRAConfig(rank=-2), "lora.rank"),
        (LoRAConfig(dropout=1.0), "lora.dropout"),
        (LoRAConfig(target_modules=[]), "lora.target_modules"),
        (LoRAConfig(target_modules=["q", "query"]), "lora.target_modules: 'query'"),
        (LoRAConfig(target_modules=["wi_0"]), "lora.target_modules: 'wi_0'"),  # v1.0 has wi
    ],
)
def test_bad_configs_name_the_key(config, key):
    with pytest.raises(ConfigError, match=key):
        add_lora(T5Model(tiny_config()), config)


def test_unknown_keys_and_double_lora_are_config_errors():
    with pytest.raises(ConfigError, match="lora.r"):
        LoRAConfig.from_dict({"r": 4})
    model = T5Model(tiny_config())
    add_lora(model, LoRAConfig(rank=2))
    with pytest.raises(ConfigError, match="already has LoRA"):
        add_lora(model, LoRAConfig(rank=2))


@pytest.mark.parametrize("flavour", [{}, V11])
def test_peft_export_loads_in_peft_with_the_same_logits(flavour, tmp_path):
    peft = pytest.importorskip("peft")
    transformers = pytest.importorskip("transformers")
    from taskmix.models.hf import save_hf_checkpoint
    from taskmix.models.lora_peft import save_peft_adapter

    model = T5Model(tiny_config(dropout_rate=0.0, **flavour)).eval()
    save_hf_checkpoint(model, tmp_path / "base")  # before LoRA: base weights only
    targets = ALL_T5_11 if flavour else ALL_T5_10
    config = LoRAConfig(rank=4, alpha=8, target_modules=targets)
    add_lora(model, config)
    _randomise(model)
    save_peft_adapter(model, config, tmp_path / "lora")
    hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "base").eval()
    peft_model = peft.PeftModel.from_pretrained(hf, tmp_path / "lora").eval()
    inputs, decoder_inputs, targets_ = _batch()
    with torch.no_grad():
        ours = model(inputs, decoder_inputs, targets_).logits
        theirs = peft_model(
            input_ids=inputs,
            attention_mask=(inputs > 0).long(),
            decoder_input_ids=decoder_inputs,
        ).logits
    torch.testing.assert_close(theirs, ours, atol=1e-4, rtol=1e-4)
    with torch.no_grad(), peft_model.disable_adapter():  # the updates were really loaded
        off = peft_model(input_ids=inputs, decoder_input_ids=decoder_inputs).logits
    assert not torch.allclose(off, ours, atol=1e-3)


def test_merged_updates_are_not_saved(tmp_path):
    from taskmix.errors import CheckpointError
    from taskmix.models.lora_peft import save_peft_adapter

    model = T5Model(tiny_config())
    config = LoRAConfig(rank=2)
    add_lora(model, config)
    merge_lora(model)
    with pytest.raises(CheckpointError, match="unmerge"):
        save_peft_adapter(model, config, tmp_path / "lora")


def _attention_with_lora(targets, *, dropout=0.0, seed=0) -> Attention:
    torch.manual_seed(seed)
    attention = Attention(tiny_config(d_model=64, d_kv=16, num_heads=4))
    add_lora(attention, LoRAConfig(rank=3, alpha=6, dropout=dropout, target_modules=targets))
    _randomise(attention)
    return attention


def _per_layer(x: torch.Tensor, layers) -> torch.Tensor:
    """What the fused projection stands for, in float64: each layer's formula, side by side."""
    outs = []
    for layer in layers:
        out = x.double() @ layer.weight.double().t()
        if isinstance(layer, LoRALinear) and not layer.merged:
            a, b = layer.lora_A.weight.double(), layer.lora_B.weight.double()
            out = out + (x.double() @ a.t() @ b.t()) * layer.scaling
        outs.append(out)
    return torch.cat(outs, dim=-1)


@pytest.mark.parametrize(
    ("targets", "which"),
    [
        (["q", "v"], ("q", "k", "v")),  # PEFT's default: k stays plain, in the middle
        (["k", "v"], ("k", "v")),  # cross-attention's keys/values, all adapted
        (["q"], ("q", "k", "v")),
        (["v"], ("k", "v")),  # a plain block before the update
    ],
)
@pytest.mark.parametrize("frozen", [True, False])
def test_fused_projection_matches_the_layers(targets, which, frozen):
    attention = _attention_with_lora(targets)
    layers = tuple(getattr(attention, name) for name in which)
    if frozen:
        freeze_all_but(attention, [n for n, _ in attention.named_parameters() if "lora_" in n])
    x = torch.randn(2, 9, 64, requires_grad=True)
    out = lora_module.fused_projection(x, layers, attention._packed_qkv)
    assert out is not None and out.shape == (2, 9, sum(layer.out_features for layer in layers))
    g = torch.randn_like(out)
    out.backward(g)

    base_grads = [layer.weight.grad for layer in layers]
    assert all(grad is None for grad in base_grads) == frozen  # a frozen base: no weight grad
    reference_params = [p for layer in layers for p in layer.parameters() if p.requires_grad]
    ours = [x.grad] + [p.grad for p in reference_params]
    x.grad = None
    for p in reference_params:
        p.grad = None
    expected = _per_layer(x, layers)
    expected_grads = torch.autograd.grad(expected, [x, *reference_params], g.double())
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    for got, want in zip(ours, expected_grads, strict=True):
        torch.testing.assert_close(got.double(), want.double(), atol=1e-4, rtol=1e-4)


def test_attention_fuses_lora_projections_and_calls_nothing_per_layer(monkeypatch):
    attention = _attention_with_lora(["q", "v"]).eval()  # no attention dropout
    x = torch.randn(2, 9, 64)
    bias = torch.zeros(1, 4, 9, 9)
    expected = attention(x, bias)  # through the fused projection

    def refuse(self, x):
        raise AssertionError("a LoRA layer of the fused projections was called")

    monkeypatch.setattr(LoRALinear, "forward", refuse)
    torch.testing.assert_close(attention(x, bias), expected, atol=0, rtol=0)
    kv = torch.randn(2, 5, 64)  # cross-attention: q is called, k and v are fused
    with pytest.raises(AssertionError, match="was called"):
        attention(x, torch.zeros(1, 4, 9, 5), kv=kv)


def test_layers_that_cannot_be_fused_are_called():
    attention = _attention_with_lora(["q", "v"], dropout=0.5).train()
    layers = (attention.q, attention.k, attention.v)
    x = torch.randn(2, 9, 64)
    assert lora_module.fused_projection(x, layers, attention._packed_qkv) is None  # dropout
    attention.eval()  # no dropout in effect
    assert lora_module.fused_projection(x, layers, attention._packed_qkv) is not None
    attention.v.register_forward_hook(lambda *args: None)
    assert lora_module.fused_projection(x, layers, attention._packed_qkv) is None  # a hook


def test_merged_updates_fuse_as_plain_projections():
    attention = _attention_with_lora(["q", "v"]).eval()
    layers = (attention.q, attention.k, attention.v)
    x = torch.randn(2, 9, 64)
    with torch.no_grad():
        unmerged = lora_module.fused_projection(x, layers, attention._packed_qkv)
        merge_lora(attention)
        merged = lora_module.fused_projection(x, layers, attention._packed_qkv)
    torch.testing.assert_close(merged, unmerged, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(merged.double(), _per_layer(x, layers), atol=1e-5, rtol=1e-5)


def test_lora_linear_forward_and_gradients_match_the_formula():
    torch.manual_seed(1)
    layer = LoRALinear(torch.nn.Linear(64, 48, bias=False), rank=4, alpha=8)
    torch.nn.init.normal_(layer.lora_B.weight, std=0.3)
    layer.weight.requires_grad_(False)
    x = torch.randn(3, 7, 64, requires_grad=True)
    out = layer(x)
    g = torch.randn_like(out)
    out.backward(g)
    params = [x, layer.lora_A.weight, layer.lora_B.weight]
    ours = [p.grad for p in params]
    expected = _per_layer(x, [layer])
    torch.testing.assert_close(out.double(), expected, atol=1e-5, rtol=1e-5)
    for got, want in zip(ours, torch.autograd.grad(expected, params, g.double()), strict=True):
        torch.testing.assert_close(got.double(), want.double(), atol=1e-4, rtol=1e-4)
    assert layer.weight.grad is None
