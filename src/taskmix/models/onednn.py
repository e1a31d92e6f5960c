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


def onednn_setting() -> bool | None:
    """The setting in force (forced, or decided at first use), None if not decided yet;
    ``set_onednn(onednn_setting())`` puts it back."""
    return _STATE.get("enabled")


def mm_nt(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``a (M, K) @ b (N, K).T`` with oneDNN; ``b`` may be a packed weight or a strided view."""
    return torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")


def _self_check() -> bool:
    """Once per process: every product form taskmix uses (plain, packed, and the backward's
    transposed views) against float64 on a small random input, with a private generator (the
    global RNG stays put). Any error or a relative difference over 1e-4 turns oneDNN off, with
    a warning, so a broken build never gives wrong results."""
    if not (
        torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
    ):
        return False
    try:
        generator = torch.Generator().manual_seed(0)
        x = torch.randn(37, 48, generator=generator)
        w = torch.randn(24, 48, generator=generator)
        g = torch.randn(37, 24, generator=generator)
        x64, w64, g64 = x.double(), w.double(), g.double()
        packed = torch.ops.mkldnn._reorder_linear_weight(w, None)
        pairs = [
            (mm_nt(x, w), x64 @ w64.t()),
            (mm_nt(x, packed), x64 @ w64.t()),
            (mm_nt(g, w.t()), g64 @ w64),
            (mm_nt(g.t(), x.t()), g64.t() @ x64),
        ]
        worst = max(((a.double() - b).abs().max() / b.abs().max()).item() for a, b in pairs)
        if not worst <= 1e-4:  # also catches NaN
            raise RuntimeError(f"relative difference {worst:.1e} from float64")
    except Exception as err:  # any failure means: do not use the op
        warnings.warn(
            f"taskmix: oneDNN fp32 matmul disabled, self-check failed ({err}); using torch.mm",
            RuntimeWarning,
            stacklevel=3,
        )
        return False
    return True
