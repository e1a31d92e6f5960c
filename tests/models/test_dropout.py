"""The cheap CPU dropout mask (``models/dropout.py``)."""

from __future__ import annotations

import pytest
import torch

from taskmix.models.dropout import Dropout, dropout, keep_mask, relu_dropout


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


def test_relu_dropout_is_relu_then_dropout():
    torch.manual_seed(2)
    x = torch.randn(200, 31, requires_grad=True)
    y = relu_dropout(x, 0.2, training=True)
    kept = y != 0
    assert not bool((kept & (x <= 0)).any())  # relu first
    assert torch.allclose(y[kept], x[kept] / 0.8)
    rate = kept.float().sum() / (x > 0).float().sum()
    assert 0.75 < rate.item() < 0.85
    y.sum().backward()
    assert torch.allclose(x.grad, kept.float() / 0.8)
    assert torch.equal(relu_dropout(x, 0.2, training=False), torch.relu(x))
