"""When to run fp32 CPU matrix products through oneDNN instead of ``torch.mm``.

PyTorch's CPU build computes ``torch.mm`` / ``F.linear`` in fp32 with MKL's sgemm, which on
AMD CPUs keeps to AVX2 even where AVX-512 is there; the oneDNN library bundled in the same
build uses AVX-512. On the 2-core AMD EPYC development machine that made fp32 products 1.9-2.4x
faster (``bench/train_throughput.py`` measures both peaks). Results agree with ``torch.mm`` to
fp32 rounding (a different summation order).

``TASKMIX_ONEDNN=0`` turns it off (an ablation, or a platform where it misbehaves); a one-time
self-check on first use turns it off, with a warning, if the op is missing or disagrees.
"""

from __future__ import annotations

import os
import warnings

import torch

_STATE: dict[str, bool] = {}


def onednn_enabled(tensor: torch.Tensor) -> bool:
    """Whether an fp32 product with this CPU tensor should go through oneDNN."""
    if tensor.device.type != "cpu" or tensor.dtype != torch.float32:
        return False
    if "enabled" not in _STATE:
        _STATE["enabled"] = os.environ.get("TASKMIX_ONEDNN", "1") != "0" and _self_check()
    return _STATE["enabled"]


def set_onednn(enabled: bool | None) -> None:
    """Force oneDNN on or off for this process; ``None`` re-reads the environment next time."""
    if enabled is None:
        _STATE.pop("enabled", None)
    else:
        _STATE["enabled"] = bool(enabled) and _self_check()


def _self_check() -> bool:
    if not (
        torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    ):
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(5, 24, generator=generator)
        w = torch.randn(16, 24, generator=generator)
        got = torch.ops.mkldnn._linear_pointwise(x, w, None, "none", [], "")
        packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        got_packed = torch.ops.mkldnn._linear_pointwise(x, packed, None, "none", [], "")
        want = x.double() @ w.double().t()
        ok = all(torch.allclose(g.double(), want, rtol=1e-4, atol=1e-4) for g in (got, got_packed))
    except (RuntimeError, TypeError) as err:
        warnings.warn(
            f"taskmix: oneDNN fp32 matmul unavailable ({err}); using torch.mm", stacklevel=3
        )
        return False
    if not ok:
        warnings.warn(
            "taskmix: oneDNN fp32 matmul disagrees with torch.mm; using torch.mm", stacklevel=3
        )
    return ok
