"""Building blocks (``models/layers.py``)."""

from __future__ import annotations

import torch

from taskmix.models.layers import T5LayerNorm


def _reference(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    return weight * (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps))


def test_rms_norm_fast_cpu_path_matches_the_formula_and_its_gradients():
    torch.manual_seed(0)
    norm = T5LayerNorm(48, eps=1e-6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
    x = torch.randn(3, 17, 48, requires_grad=True)
    grad = torch.randn(3, 17, 48)
    y = norm(x)
    assert y.grad_fn is not None and "RMSNorm" in type(y.grad_fn).__name__  # the fast path
    y.backward(grad)
    x64 = x.detach().double().requires_grad_()
    w64 = norm.weight.detach().double().requires_grad_()
    expected = _reference(x64, w64, 1e-6)
    expected.backward(grad.double())
    assert torch.allclose(y.double(), expected, atol=1e-6)
    assert torch.allclose(x.grad.double(), x64.grad, atol=1e-5)
    assert torch.allclose(norm.weight.grad.double(), w64.grad, atol=1e-4, rtol=1e-5)
    with torch.no_grad():  # inference takes the plain formula: same values
        assert torch.allclose(norm(x), y, atol=1e-6)


def test_rms_norm_with_a_frozen_weight():
    norm = T5LayerNorm(8)
    norm.weight.requires_grad_(False)
    x = torch.randn(5, 8, requires_grad=True)
    norm(x).sum().backward()
    assert x.grad is not None and norm.weight.grad is None
