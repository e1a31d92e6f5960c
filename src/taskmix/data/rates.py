"""Mixing rates from example counts (SPEC §6), with seqio's order of operations.

For task ``m`` with ``e_m`` examples, scale ``s_m``, cap ``K`` and temperature ``T`` the
unnormalised rate is ``min(s_m * e_m, K) ** (1 / T)`` -- scale, then cap, then temperature, as
``seqio.mixing_rate_num_examples`` computes it -- and rates are divided by their sum:

- ``proportional``: ``T = 1``, so ``r_m = min(e_m, K) / sum_n min(e_n, K)``;
- ``temperature``: any ``T > 0`` (``T = 1`` is proportional, large ``T`` approaches equal);
- ``equal``: ``r_m = 1 / N``, whatever the counts;
- ``explicit``: the given rates, renormalised.

With any strategy, ``explicit`` may also give some names a fixed unnormalised rate that is used
as it is (no scale, cap or temperature), like a numeric rate next to ``rate_num_examples`` in a
seqio mixture (T5 gives its unsupervised task a fixed rate this way).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

Strategy = Literal["proportional", "temperature", "equal", "explicit"]
STRATEGIES: tuple[str, ...] = ("proportional", "temperature", "equal", "explicit")


def _check_number(name: str, value: float, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {value!r}")
    if positive and value <= 0:
        raise ValueError(f"{name} must be > 0, got {value!r}")
    if not positive and value < 0:
        raise ValueError(f"{name} must be >= 0, got {value!r}")
    return float(value)


def _check_counts(counts: Mapping[str, int]) -> None:
    if not counts:
        raise ValueError("cannot compute mixing rates of zero components")
    for name, count in counts.items():
        if isinstance(count, bool) or not isinstance(count, int) or count < 0:
            raise ValueError(f"example count of {name!r} must be an integer >= 0, got {count!r}")


def unnormalized_rate(
    count: int, *, cap: int | None = None, temperature: float = 1.0, scale: float = 1.0
) -> float:
    """``min(scale * count, cap) ** (1 / temperature)``: seqio's ``mixing_rate_num_examples``."""
    value = scale * count
    if cap is not None:
        value = min(value, cap)
    if temperature != 1.0:
        value = value ** (1.0 / temperature)
    return float(value)


def mixing_rates(
    counts: Mapping[str, int],
    *,
    strategy: Strategy = "proportional",
    cap: int | None = None,
    temperature: float = 1.0,
    scale: Mapping[str, float] | None = None,
    explicit: Mapping[str, float] | None = None,
) -> dict[str, float]:
    """Rates that sum to 1, one per name in ``counts`` (same order).

    ``scale`` maps names to multipliers of their counts (default 1). ``explicit`` gives fixed
    unnormalised rates: all of them with ``strategy="explicit"``, or some of them otherwise.
    Raises ``ValueError`` for negative counts, ``T <= 0``, ``cap <= 0``, unknown names in
    ``scale``/``explicit``, or when every rate is zero.
    """
    _check_counts(counts)
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown mixing strategy {strategy!r}; expected one of {STRATEGIES}")
    temperature = _check_number("temperature", temperature, positive=True)
    if cap is not None and (
        isinstance(cap, bool) or not isinstance(cap, (int, float)) or not cap > 0
    ):
        raise ValueError(f"cap must be a number > 0 (or None for no cap), got {cap!r}")
    scale = dict(scale or {})
    explicit = dict(explicit or {})
    for what, mapping in (("scale", scale), ("explicit", explicit)):
        unknown = sorted(set(mapping) - set(counts))
        if unknown:
            raise ValueError(f"{what} names unknown components {unknown}; known: {list(counts)}")
    for name, value in scale.items():
        _check_number(f"scale of {name!r}", value, positive=False)
    for name, value in explicit.items():
        _check_number(f"explicit rate of {name!r}", value, positive=False)

    counted = strategy in ("proportional", "temperature")
    if not counted and (cap is not None or temperature != 1.0 or scale):
        raise ValueError(
            f"cap, temperature and scale apply to the 'proportional' and 'temperature' "
            f"strategies, not to {strategy!r}"
        )
    if strategy == "proportional" and temperature != 1.0:
        raise ValueError(
            f"strategy 'proportional' has temperature 1; got temperature={temperature} "
            "(use strategy='temperature')"
        )
    if strategy == "explicit":
        missing = [name for name in counts if name not in explicit]
        if missing:
            raise ValueError(
                f"strategy 'explicit' needs a rate for every component; missing {missing}"
            )

    raw: dict[str, tuple[float, float]] = {}  # name -> (value, power): rate = value ** power
    for name, count in counts.items():
        if name in explicit:
            raw[name] = (float(explicit[name]), 1.0)
        elif strategy == "equal":
            raw[name] = (1.0, 1.0)
        else:
            value = unnormalized_rate(count, cap=cap, scale=scale.get(name, 1.0))
            raw[name] = (value, 1.0 / temperature)
    if not any(value > 0 for value, _ in raw.values()):
        raise ValueError(
            f"every mixing rate is zero (strategy {strategy!r}, counts {dict(counts)}): "
            "the mixture has nothing to sample"
        )
    return _normalise(raw)


def _normalise(raw: Mapping[str, tuple[float, float]]) -> dict[str, float]:
    """``value ** power`` divided by the sum; in log space if a small temperature overflows."""
    try:
        powered = {name: value**power for name, (value, power) in raw.items()}
        total = math.fsum(powered.values())
        if math.isfinite(total):
            return {name: value / total for name, value in powered.items()}
    except OverflowError:
        pass
    logs = {n: p * math.log(v) if v > 0 else -math.inf for n, (v, p) in raw.items()}
    top = max(logs.values())
    shifted = {name: math.exp(value - top) for name, value in logs.items()}
    total = math.fsum(shifted.values())
    return {name: value / total for name, value in shifted.items()}
