"""Decoding runs the model's own modules: a wrapped, hooked or replaced layer changes cached
decoding, uncached decoding and the teacher-forced training forward alike.

Each case wraps one layer so that the model's output changes, then checks, token for token,
that cached decoding == uncached decoding == the argmax of the training forward run on the
decoded sequence, and that the output differs from the unwrapped model's (so a decoder that
ignored the wrapper would fail). Every case runs with the packed fast paths (oneDNN weights,
fused projections; forced on for these tiny shapes) and without them.
"""

from __future__ import annotations

import copy
import pickle
from collections.abc import Callable

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taskmix.models import DecoderOnlyLM, T5Model, onednn, packed
from taskmix.models.generate import greedy_decode, score_options
from taskmix.models.layers import LayerSelfAttention
from tests.models.helpers import tiny_config

EOS = 1
V11 = {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}


@pytest.fixture(params=["packed", "plain"])
def fast_paths(request, monkeypatch):
    """``packed``: the packed paths taken at any size (they are skipped below ~1M
    multiply-adds, which excludes every tiny test model); ``plain``: never taken."""
    if request.param == "packed":
        if not onednn.onednn_enabled(torch.ones(1)):
            pytest.skip("oneDNN is not available")
        monkeypatch.setattr(packed, "_MIN_MACS", 0)
    else:
        monkeypatch.setattr(packed, "_MIN_MACS", 1 << 62)
    return request.param


class Adapter(nn.Module):
    """An adapter around a projection: ``y = base(x); y + up(relu(down(y)))``."""

    def __init__(self, base: nn.Linear, bottleneck: int = 8):
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.out_features, bottleneck)
        self.up = nn.Linear(bottleneck, base.out_features)
        with torch.no_grad():
            self.up.weight.normal_(std=0.5)  # adapters often start at zero; this one must act

    @property
    def weight(self) -> torch.Tensor:  # transformers' T5 reads ``wo.weight.dtype``
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.up(F.relu(self.down(y)))


class ScaledLinear(nn.Linear):
    """A subclass that changes the product (so it must not be fused as a plain projection)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 1.5 * super().forward(x)


class NoCacheSelfAttention(nn.Module):
    """A replacement self-attention layer whose forward takes no cache argument."""

    def __init__(self, layer: LayerSelfAttention):
        super().__init__()
        self.inner = layer

    def forward(self, x: torch.Tensor, attn_bias) -> torch.Tensor:
        return self.inner(x, attn_bias) + 0.25


def _add(value: float) -> Callable:
    def hook(module, args, output):
        return output + value

    return hook


def _scale(factor: float) -> Callable:
    def hook(module, args, output):
        return output * factor

    return hook


def _encoder_decoder(flavour: str) -> tuple[T5Model, torch.Tensor]:
    """A random model whose EOS logit is boosted until some rows (not all) end early."""
    torch.manual_seed(7)
    model = T5Model(tiny_config(**(V11 if flavour == "v1.1" else {}))).eval()
    inputs = torch.randint(2, 96, (6, 9))
    inputs[1, 5:] = 0
    inputs[4, 2:] = 0
    head = model.shared.weight if model.lm_head is None else model.lm_head.weight
    with torch.no_grad():
        head[0] = 0.0  # never predict the padding id (teacher forcing masks it as a key)
        if model.lm_head is None:
            head.mul_(0.05)  # a large tied embedding makes random models echo their last token
        eos_row = head[EOS].clone()
        for boost in torch.linspace(1.0, 6.0, 21):
            head[EOS] = eos_row * boost
            ended = (greedy_decode(model, inputs, max_length=8) == EOS).any(1)
            if 0 < int(ended.sum()) < len(inputs):
                return model, inputs
    raise AssertionError("could not make a model that stops on some rows only")


# name -> function that wraps one layer of the model in place
WRAPPERS: dict[str, Callable[[nn.Module], None]] = {
    "hook on a decoder LayerFF": lambda m: (
        m.decoder.block[1].layer[-1].register_forward_hook(_add(0.7))
    ),
    "adapter around a decoder wo": lambda m: setattr(
        m.decoder.block[0].layer[-1].DenseReluDense,
        "wo",
        Adapter(m.decoder.block[0].layer[-1].DenseReluDense.wo),
    ),
    "hook on an encoder layer": lambda m: (
        m.encoder.block[0].layer[0].register_forward_hook(_add(0.7))
    ),
    "hook on a fused value projection": lambda m: (
        m.decoder.block[0].layer[0].SelfAttention.v.register_forward_hook(_add(0.7))
    ),
    "hook on a cross-attention key projection": lambda m: (
        m.decoder.block[1].layer[1].EncDecAttention.k.register_forward_hook(_scale(1.7))
    ),
    "subclassed first feed-forward projection": lambda m: _replace_wi(m.decoder.block[1]),
}


def _replace_wi(block: nn.Module) -> None:
    dense = block.layer[-1].DenseReluDense
    name = "wi_0" if hasattr(dense, "wi_0") else "wi"
    old = getattr(dense, name)
    new = ScaledLinear(old.in_features, old.out_features, bias=False)
    new.load_state_dict(old.state_dict())
    setattr(dense, name, new)


def _teacher_forced(model: T5Model, inputs: torch.Tensor, decoded: torch.Tensor) -> torch.Tensor:
    """The training forward's argmax at every position of the decoded sequence."""
    decoder_inputs = F.pad(decoded, (1, 0))[:, :-1]
    with torch.no_grad():
        return model(inputs, decoder_inputs, decoded).logits.argmax(-1)


def _assert_consistent(model: T5Model, inputs: torch.Tensor, max_length: int = 8) -> torch.Tensor:
    cached = greedy_decode(model, inputs, max_length=max_length)
    uncached = greedy_decode(model, inputs, max_length=max_length, use_cache=False)
    assert torch.equal(cached, uncached)
    assert torch.equal(cached, greedy_decode(model, inputs, max_length=max_length, compact=False))
    forced = _teacher_forced(model, inputs, cached)
    for row, row_forced in zip(cached, forced, strict=True):
        hits = (row == EOS).nonzero()
        end = int(hits[0]) + 1 if len(hits) else len(row)  # after EOS the row is padding
        assert torch.equal(row[:end], row_forced[:end])
    return cached


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
@pytest.mark.parametrize("wrapper", list(WRAPPERS))
def test_wrapped_layers_count_in_every_decoding_path(flavour, wrapper, fast_paths):
    model, inputs = _encoder_decoder(flavour)
    plain = _assert_consistent(model, inputs)
    assert (plain == EOS).any(), "the test model should end some rows early"
    WRAPPERS[wrapper](model)
    wrapped = _assert_consistent(model, inputs)
    assert not torch.equal(wrapped, plain), f"{wrapper}: no effect on the output"


def test_attention_layer_without_a_cache_argument_decodes_uncached(fast_paths):
    model, inputs = _encoder_decoder("v1.1")
    plain = greedy_decode(model, inputs, max_length=8)
    block = model.decoder.block[1]
    block.layer[0] = NoCacheSelfAttention(block.layer[0])
    assert not model.decoder.supports_cache()
    with pytest.warns(RuntimeWarning, match="key/value cache"):
        wrapped = _assert_consistent(model, inputs)
    assert not torch.equal(wrapped, plain)


@pytest.mark.parametrize("architecture", ["decoder_only", "prefix_lm"])
def test_lm_decoding_honours_a_wrapped_layer(architecture, fast_paths):
    torch.manual_seed(5)
    model = DecoderOnlyLM(tiny_config(architecture=architecture)).eval()
    inputs = torch.randint(2, 96, (5, 7))
    inputs[1, 3:] = 0
    with torch.no_grad():
        model.shared.weight[0] = 0.0
        model.shared.weight.mul_(0.05)
    plain = greedy_decode(model, inputs, max_length=8)
    model.decoder.block[0].layer[-1].register_forward_hook(_add(0.7))
    cached = greedy_decode(model, inputs, max_length=8)
    assert torch.equal(cached, greedy_decode(model, inputs, max_length=8, use_cache=False))
    assert not torch.equal(cached, plain)


def test_packed_copies_follow_updates_and_are_dropped_by_copies(monkeypatch):
    if not onednn.onednn_enabled(torch.ones(1)):
        pytest.skip("oneDNN is not available")
    monkeypatch.setattr(packed, "_MIN_MACS", 0)
    model, inputs = _encoder_decoder("v1.1")
    before = greedy_decode(model, inputs, max_length=6)
    assert model.lm_head._packed.tensor is not None  # made while decoding
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(-1.5)  # in place: the packed copies must be rebuilt
    after = greedy_decode(model, inputs, max_length=6)
    assert torch.equal(after, greedy_decode(model, inputs, max_length=6, use_cache=False))
    assert not torch.equal(after, before)
    clone = copy.deepcopy(model)  # a oneDNN tensor cannot be copied or pickled: dropped
    assert clone.lm_head._packed.tensor is None
    pickle.loads(pickle.dumps(model))
    assert torch.equal(greedy_decode(clone, inputs, max_length=6), after)


def test_no_packed_copies_outside_decoding(monkeypatch):
    monkeypatch.setattr(packed, "_MIN_MACS", 0)
    model = T5Model(tiny_config(**V11)).eval()
    inputs = torch.randint(2, 96, (6, 9))
    with torch.no_grad():
        model(inputs, torch.zeros(6, 3, dtype=torch.long))
    with torch.inference_mode():
        model.encode(inputs, skip_padding=True)
    assert all(
        m._packed.tensor is None for m in model.modules() if "_packed" in vars(m)
    )  # plain forwards (and training) never pack


def test_score_options_runs_the_wrapped_model(fast_paths):
    model, _ = _encoder_decoder("v1.1")
    inputs, options = [[5, 6, 7], [9, 10]], [[20, EOS], [30, 31, EOS]]
    plain = score_options(model, inputs, options).scores
    model.decoder.block[0].layer[-1].register_forward_hook(_add(0.7))
    wrapped = score_options(model, inputs, options).scores
    assert wrapped[0] != pytest.approx(plain[0], abs=1e-3)
    expected = []
    for x in inputs:
        row = []
        for option in options:
            y = torch.tensor([option])
            with torch.no_grad():
                out = model(torch.tensor([x]), F.pad(y, (1, 0))[:, :-1], y)
            row.append(-out.loss_sum.item())
        expected.append(row)
    for got, want in zip(wrapped, expected, strict=True):
        assert got == pytest.approx(want, abs=1e-4)
