"""The oneDNN fp32 CPU linear: forward and gradients match F.linear (float64 reference)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from taskmix.models import cpu_linear, onednn
from taskmix.models.cpu_linear import Linear, linear

needs_onednn = pytest.mark.skipif(
    not onednn.onednn_enabled(torch.empty(0)),
    reason="oneDNN switched off, or torch without a working mkldnn _linear_pointwise",
)


def rel(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).abs().max() / b.double().abs().max()).item()


def reference(x, w, g):
    """Output and both gradients of F.linear in float64."""
    x64 = x.detach().double().requires_grad_()
    w64 = w.detach().double().requires_grad_()
    y = F.linear(x64, w64)
    gx, gw = torch.autograd.grad(y, (x64, w64), g.double())
    return y, gx, gw


@pytest.fixture
def any_size(monkeypatch):
    """Take the oneDNN path for the small shapes of these tests too, on any CPU."""
    monkeypatch.setattr(cpu_linear, "_MIN_MACS", 0)
    monkeypatch.setattr(cpu_linear, "_onednn_gains", lambda: True)


@pytest.fixture
def count_onednn_calls(monkeypatch):
    calls = []
    original = cpu_linear._mm_nt

    def counted(a, b):
        calls.append((tuple(a.shape), tuple(b.shape)))
        return original(a, b)

    monkeypatch.setattr(cpu_linear, "_mm_nt", counted)
    return calls


@needs_onednn
@pytest.mark.parametrize(
    "x_shape, out_features",
    [((256, 128), 96), ((4, 70, 64), 200), ((2, 3, 50, 96), 33), ((1000, 24), 512)],
)
def test_forward_and_gradients_match_f_linear(x_shape, out_features, any_size, count_onednn_calls):
    x = torch.randn(*x_shape, requires_grad=True)
    w = torch.randn(out_features, x_shape[-1], requires_grad=True)
    y = linear(x, w)
    g = torch.randn_like(y)
    y.backward(g)
    assert len(count_onednn_calls) == 3  # forward, grad_x, grad_w all through oneDNN
    y64, gx64, gw64 = reference(x, w, g)
    assert y.shape == y64.shape and x.grad.shape == x.shape and w.grad.shape == w.shape
    assert rel(y, y64) < 1e-4
    assert rel(x.grad, gx64) < 1e-4
    assert rel(w.grad, gw64) < 1e-4


@needs_onednn
@pytest.mark.parametrize("x_grad, w_grad", [(True, False), (False, True), (False, False)])
def test_only_the_wanted_gradients_are_computed(x_grad, w_grad, any_size, count_onednn_calls):
    x = torch.randn(3, 100, 64, requires_grad=x_grad)
    w = torch.randn(128, 64, requires_grad=w_grad)
    y = linear(x, w)
    assert y.requires_grad == (x_grad or w_grad)
    g = torch.randn_like(y)
    y64, gx64, gw64 = reference(x, w, g)
    assert rel(y, y64) < 1e-4
    if y.requires_grad:
        y.backward(g)
    assert len(count_onednn_calls) == 1 + x_grad + w_grad
    assert (x.grad is not None) == x_grad and (w.grad is not None) == w_grad
    if x_grad:
        assert rel(x.grad, gx64) < 1e-4
    if w_grad:
        assert rel(w.grad, gw64) < 1e-4


@needs_onednn
def test_strided_inputs_and_expanded_gradient(any_size, count_onednn_calls):
    # rows of a wider tensor (stride 96 > 64), a transposed 3-D input, and the stride-0
    # gradient of .sum()
    for x in (
        torch.randn(300, 96)[:, 16:80],
        torch.randn(64, 80, 3).permute(2, 1, 0),
    ):
        x.requires_grad_()
        w = torch.randn(128, 64, requires_grad=True)
        linear(x, w).sum().backward()
        y64, gx64, gw64 = reference(x, w, torch.ones(*x.shape[:-1], 128))
        assert rel(linear(x, w), y64) < 1e-4
        assert rel(x.grad, gx64) < 1e-4
        assert len(count_onednn_calls) == 4
        count_onednn_calls.clear()
        assert rel(w.grad, gw64) < 1e-4


@needs_onednn
def test_gradients_accumulate_and_are_deterministic():
    x = torch.randn(512, 64)
    w = torch.randn(256, 64, requires_grad=True)
    grads = []
    for _ in range(2):
        w.grad = None
        linear(x, w).square().sum().backward()
        linear(x, w).sum().backward()
        grads.append(w.grad.clone())
    assert torch.equal(grads[0], grads[1])
    w64 = w.detach().double().requires_grad_()
    (F.linear(x.double(), w64).square().sum() + F.linear(x.double(), w64).sum()).backward()
    assert rel(grads[0], w64.grad) < 1e-4


def test_fallbacks_use_f_linear(count_onednn_calls):
    w = torch.randn(128, 64)
    # float64, too small to gain, bias, 1-D input
    linear(torch.randn(100, 64, dtype=torch.float64), w.double())
    linear(torch.randn(2, 64), w)
    linear(torch.randn(100, 64), w, torch.randn(128))
    linear(torch.randn(64), w)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert linear(torch.randn(100, 64), w).dtype == torch.bfloat16
    onednn.set_onednn(False)  # the package switch (TASKMIX_ONEDNN=0) turns this off too
    try:
        x = torch.randn(100, 64)
        torch.testing.assert_close(linear(x, w), F.linear(x, w), rtol=0, atol=0)
    finally:
        onednn.set_onednn(None)
    assert count_onednn_calls == []
    with pytest.raises(RuntimeError):
        linear(torch.randn(100, 65), w)


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
def test_failed_self_check_disables_with_a_warning(monkeypatch):
    def broken(a, b):
        return F.linear(a, b) + 1.0

    monkeypatch.setattr(onednn, "mm_nt", broken)
    monkeypatch.setattr(onednn, "_STATE", {})  # forget the cached check (restored afterwards)
    monkeypatch.setenv("TASKMIX_ONEDNN", "1")
    x, w = torch.randn(100, 64), torch.randn(128, 64)
    with pytest.warns(RuntimeWarning, match="self-check failed"):
        assert not onednn.onednn_enabled(x)
    torch.testing.assert_close(linear(x, w), F.linear(x, w), rtol=0, atol=0)


def test_self_check_leaves_the_global_rng_alone():
    state = torch.get_rng_state()
    onednn._self_check()
    assert torch.equal(torch.get_rng_state(), state)


def test_linear_module_is_an_nn_linear_with_the_same_state_dict():
    torch.manual_seed(0)
    ref = nn.Linear(64, 128, bias=False)
    torch.manual_seed(0)
    ours = Linear(64, 128, bias=False)
    assert isinstance(ours, nn.Linear)
    assert ours.state_dict().keys() == ref.state_dict().keys() == {"weight"}
    assert torch.equal(ours.weight, ref.weight)  # same initialisation
    x = torch.randn(2, 50, 64)
    assert rel(ours(x), ref(x)) < 1e-4
    biased = Linear(64, 128)
    torch.testing.assert_close(biased(x), F.linear(x, biased.weight, biased.bias))


@needs_onednn
@pytest.mark.parametrize(("capability", "onednn"), [("AVX512", True), ("AVX2", False)])
def test_onednn_only_where_it_beats_mkl(capability, onednn, monkeypatch, count_onednn_calls):
    # without AVX-512, MKL (F.linear) is the faster of the two: the projections keep to it
    monkeypatch.setattr(cpu_linear, "_MIN_MACS", 0)
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    cpu_linear._onednn_gains.cache_clear()
    try:
        x = torch.randn(40, 64, requires_grad=True)
        w = torch.randn(32, 64, requires_grad=True)
        y = linear(x, w)
        y.sum().backward()
        assert len(count_onednn_calls) == (3 if onednn else 0)
        y64, gx64, gw64 = reference(x, w, torch.ones(40, 32))
        assert rel(y, y64) < 1e-4 and rel(x.grad, gx64) < 1e-4 and rel(w.grad, gw64) < 1e-4
    finally:
        cpu_linear._onednn_gains.cache_clear()  # read the real CPU again
