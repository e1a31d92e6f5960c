"""Bottleneck adapters: step-0 equality, frozen-base gradients, decoding runs them, bad configs."""

from __future__ import annotations

import pytest
import torch

from taskmix.errors import ConfigError
from taskmix.models import DecoderOnlyLM, T5Model
from taskmix.models.adapters import (
    AdaptedLayerFF,
    AdapterConfig,
    add_adapters,
    freeze_all_but,
    is_adapter_parameter,
    trainable_parameter_names,
)
from taskmix.models.generate import greedy_decode
from tests.models.helpers import tiny_config
from tests.models.test_decoding_modules import (  # noqa: F401 (fast_paths is a fixture)
    V11,
    _assert_consistent,
    _encoder_decoder,
    fast_paths,
)


def _batch(batch: int = 3, length: int = 7) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    inputs = torch.randint(2, 96, (batch, length))
    targets = torch.randint(2, 96, (batch, 5))
    decoder_inputs = torch.nn.functional.pad(targets, (1, 0))[:, :-1]
    return inputs, decoder_inputs, targets


def _randomise(model: torch.nn.Module) -> None:
    with torch.no_grad():
        for name, p in model.named_parameters():
            if is_adapter_parameter(name):
                p.normal_(std=0.5)


@pytest.mark.parametrize("placement", ["feed_forward", "sum"])
@pytest.mark.parametrize("flavour", [{}, V11, {"shared_encoder_decoder": True}])
def test_adapted_model_equals_base_at_step_0(placement, flavour):
    model = T5Model(tiny_config(**flavour)).eval()
    inputs, decoder_inputs, targets = _batch()
    before = model(inputs, decoder_inputs, targets).logits
    added = add_adapters(model, AdapterConfig(dim=4, placement=placement))
    assert added and all(is_adapter_parameter(n) for n in added)
    layers = model.config.num_layers + (0 if flavour.get("shared_encoder_decoder") else 2)
    assert len(added) == 4 * layers  # down/up weight and bias per feed-forward
    after = model(inputs, decoder_inputs, targets).logits
    assert torch.equal(before, after)
    # base parameter names (and so HF checkpoint keys) are unchanged
    base = T5Model(tiny_config(**flavour)).state_dict().keys()
    assert set(base) <= set(model.state_dict())


def test_dim_and_reduction_factor_size_the_bottleneck():
    model = T5Model(tiny_config())
    add_adapters(model, AdapterConfig(reduction_factor=8))
    layer = model.encoder.block[0].layer[-1]
    assert isinstance(layer, AdaptedLayerFF)
    assert layer.adapter.down.out_features == 32 // 8
    model = T5Model(tiny_config())
    add_adapters(model, AdapterConfig(dim=3, activation="gelu"))
    assert model.decoder.block[1].layer[-1].adapter.up.in_features == 3


@pytest.mark.parametrize("train_layer_norms", [False, True])
def test_gradients_reach_only_the_adapters(train_layer_norms):
    model = T5Model(tiny_config(dropout_rate=0.0))
    config = AdapterConfig(dim=4, train_layer_norms=train_layer_norms)
    added = add_adapters(model, config)
    names = trainable_parameter_names(model, config)
    assert set(added) <= set(names)
    norms = [n for n in names if "layer_norm" in n]
    assert bool(norms) == train_layer_norms
    assert set(names) == set(added) | set(norms)
    freeze_all_but(model, names)
    _randomise(model)  # a zero up-projection gives its down-projection no gradient
    model(*_batch()).loss.backward()
    for name, p in model.named_parameters():
        if name in names:
            assert p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


@pytest.mark.parametrize("placement", ["feed_forward", "sum"])
@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_decoding_runs_the_adapters(placement, flavour, fast_paths):  # noqa: F811
    model, inputs = _encoder_decoder(flavour)
    plain = _assert_consistent(model, inputs)
    add_adapters(model, AdapterConfig(dim=8, placement=placement))
    assert torch.equal(_assert_consistent(model, inputs), plain)  # zero up-projection
    _randomise(model)
    adapted = _assert_consistent(model, inputs)
    assert not torch.equal(adapted, plain)


def test_decoder_only_models_take_adapters():
    model = DecoderOnlyLM(tiny_config(architecture="decoder_only")).eval()
    tokens = torch.randint(2, 96, (4, 6))
    tokens[1, 3:] = 0
    with torch.no_grad():  # a large tied embedding makes random models echo their last token
        model.shared.weight[0] = 0.0
        model.shared.weight.mul_(0.05)
    before = model(tokens).logits
    assert len(add_adapters(model, AdapterConfig(dim=4))) == 4 * 2
    assert torch.equal(model(tokens).logits, before)
    plain = greedy_decode(model, tokens, max_length=5)
    _randomise(model)
    cached = greedy_decode(model, tokens, max_length=5)
    assert torch.equal(cached, greedy_decode(model, tokens, max_length=5, use_cache=False))
    assert not torch.equal(cached, plain)


@pytest.mark.parametrize(
    ("config", "key"),
    [
        (AdapterConfig(), "dim"),
        (AdapterConfig(dim=4, reduction_factor=2), "reduction_factor"),
        (AdapterConfig(dim=0), "adapters.dim"),
        (AdapterConfig(reduction_factor=-1), "adapters.reduction_factor"),
        (AdapterConfig(dim=4, activation="tanh"), "adapters.activation"),
        (AdapterConfig(dim=4, placement="before"), "adapters.placement"),
    ],
)
def test_bad_configs_name_the_key(config, key):
    with pytest.raises(ConfigError, match=key):
        add_adapters(T5Model(tiny_config()), config)


def test_unsupported_models_and_double_adapters_are_config_errors():
    with pytest.raises(ConfigError, match="unsupported model"):
        add_adapters(torch.nn.Linear(3, 3), AdapterConfig(dim=2))
    with pytest.raises(ConfigError, match="adapters.bogus"):
        AdapterConfig.from_dict({"dim": 2, "bogus": 1})
    model = T5Model(tiny_config())
    add_adapters(model, AdapterConfig(dim=2))
    with pytest.raises(ConfigError, match="already"):
        add_adapters(model, AdapterConfig(dim=2))
