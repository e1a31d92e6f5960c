"""The cheap CPU dropout mask (``models/dropout.py``)."""

from __future__ import annotations

import pytest
import torch

from taskmix.models.dropout import (
    Dropout,
    dropout,
    keep_mask,
    probability_dropout,
    relu_dropout,
)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_keep_mask_rate_and_shape(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([7, 100_001]), p)  # odd element count
    assert mask.shape == (7, 100_001) and mask.dtype == torch.bool
    rate = mask.float().mean().item()
    assert abs(rate - (1 - p)) < 0.003
    flat = mask.view(-1).float()
    for chunk in range(4):  # the four 16-bit chunks of each random word behave alike
        assert abs(flat[chunk::4].mean().item() - (1 - p)) < 0.006


def test_large_masks_drawn_on_two_threads_are_seeded_and_fair():
    shape = torch.Size([1025, 2048])  # above the two-thread size
    torch.manual_seed(4)
    a = keep_mask(shape, 0.1)
    torch.manual_seed(4)
    assert torch.equal(a, keep_mask(shape, 0.1))
    assert not torch.equal(a, keep_mask(shape, 0.1))  # the torch generator moved on
    flat = a.view(-1).float()
    half = flat.numel() // 2
    for part in (flat[:half], flat[half:]):  # each thread's stream
        assert abs(part.mean().item() - 0.9) < 0.002
    assert not torch.equal(a.view(-1)[:half], a.view(-1)[half : 2 * half])  # distinct streams
    torch.manual_seed(4)
    assert torch.equal(keep_mask(shape, 0.1, torch.float32), a.float())  # same draws in float


def test_dropout_scales_kept_values_and_routes_gradients():
    torch.manual_seed(1)
    x = torch.randn(64, 33, requires_grad=True)
    y = dropout(x, 0.25, training=True)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    assert 0.65 < kept.float().mean().item() < 0.85
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.75)


def test_dropout_is_seeded_and_off_in_eval():
    layer = Dropout(0.1)
    x = torch.ones(1000)
    torch.manual_seed(3)
    a = layer(x)
    torch.manual_seed(3)
    assert torch.equal(a, layer(x))
    assert torch.equal(layer.eval()(x), x)
    assert torch.equal(dropout(x, 0.0, training=True), x)


def test_dropout_matches_masking_the_input_exactly():
    torch.manual_seed(2)
    x = torch.randn(200, 31, requires_grad=True)
    torch.manual_seed(5)
    y = dropout(x, 0.2, training=True)
    torch.manual_seed(5)
    keep = keep_mask(x.shape, 0.2)
    assert torch.equal(y, torch.where(keep, x * (1 / 0.8), 0.0))
    y.backward(torch.ones_like(y) * 3)
    assert torch.equal(x.grad, torch.where(keep, torch.full_like(x, 3 / 0.8), 0.0))


@pytest.mark.parametrize("as_view", [False, True])  # in place on a fresh tensor, or not
def test_relu_dropout_equals_relu_then_masked_dropout(as_view):
    torch.manual_seed(2)
    x = torch.randn(300, 31, requires_grad=True)
    fresh = x * 1.0
    h = fresh.view(300, 31) if as_view else fresh
    torch.manual_seed(7)
    y = relu_dropout(h, 0.2, training=True)
    torch.manual_seed(7)
    keep = keep_mask(x.shape, 0.2)
    expected = torch.where(keep, torch.relu(x) * (1 / 0.8), 0.0)
    assert torch.equal(y, expected)
    g = torch.randn_like(y)
    y.backward(g)
    assert torch.equal(x.grad, torch.where(keep & (x > 0), g * (1 / 0.8), 0.0))
    assert torch.equal(relu_dropout(x, 0.2, training=False), torch.relu(x))


def test_probability_dropout_gives_the_exact_gradient_through_softmax():
    """Its backward reads the mask off the output; through a softmax (masked keys included)
    the gradient must equal that of dropout with the explicit mask."""
    torch.manual_seed(3)
    scores = torch.randn(6, 40, 40)
    scores[:, :, 30:] = torch.finfo(torch.float32).min  # masked keys: weight exactly 0
    g = torch.randn(6, 40, 40)
    grads = []
    for explicit in (False, True):
        s = scores.clone().requires_grad_()
        weights = torch.softmax(s, dim=-1)
        torch.manual_seed(9)
        if explicit:
            out = weights * keep_mask(weights.shape, 0.3).float() * (1 / 0.7)
        else:
            out = probability_dropout(weights, 0.3, training=True)
        out.backward(g)
        grads.append(s.grad)
    assert torch.allclose(grads[0], grads[1], atol=1e-7, rtol=1e-6)
    assert grads[0].abs().sum() > 0
