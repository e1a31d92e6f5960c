"""Mixing rates follow SPEC §6 for any counts, cap and temperature (seqio's order of operations)."""

from __future__ import annotations

import math
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.rates import mixing_rates, unnormalized_rate

NAMES = [f"task{i}" for i in range(6)]
SETTINGS = settings(max_examples=60, deadline=None)

counts_st = (
    st.lists(st.integers(0, 10**6), min_size=1, max_size=6)
    .filter(any)
    .map(lambda values: {NAMES[i]: v for i, v in enumerate(values)})
)
positive_counts_st = st.lists(st.integers(1, 10**6), min_size=2, max_size=6).map(
    lambda values: {NAMES[i]: v for i, v in enumerate(values)}
)
cap_st = st.one_of(st.none(), st.integers(1, 10**6))
temperature_st = st.floats(0.2, 20.0)


def check_distribution(rates: dict[str, float], counts: dict[str, int]) -> None:
    assert list(rates) == list(counts)
    assert all(r >= 0 for r in rates.values())
    assert math.isclose(sum(rates.values()), 1.0, abs_tol=1e-9)


@SETTINGS
@given(counts=counts_st, cap=cap_st, temperature=temperature_st)
def test_rates_are_a_distribution_and_match_the_formula(counts, cap, temperature):
    rates = mixing_rates(counts, strategy="temperature", cap=cap, temperature=temperature)
    check_distribution(rates, counts)
    capped = {n: min(e, cap) if cap else e for n, e in counts.items()}
    raw = {n: v ** (1 / temperature) for n, v in capped.items()}
    if math.isfinite(sum(raw.values())):
        total = sum(raw.values())
        for name in counts:
            assert rates[name] == pytest.approx(raw[name] / total, rel=1e-6, abs=1e-12)


@SETTINGS
@given(counts=counts_st, cap=cap_st)
def test_temperature_one_is_proportional(counts, cap):
    proportional = mixing_rates(counts, strategy="proportional", cap=cap)
    check_distribution(proportional, counts)
    capped = {n: min(e, cap) if cap else e for n, e in counts.items()}
    total = sum(capped.values())
    for name in counts:
        assert proportional[name] == pytest.approx(capped[name] / total, rel=1e-12)
    same = mixing_rates(counts, strategy="temperature", cap=cap, temperature=1.0)
    assert same == pytest.approx(proportional, rel=1e-12)


@SETTINGS
@given(counts=counts_st, cap=cap_st, temperature=temperature_st, data=st.data())
def test_rates_are_monotone_in_counts(counts, cap, temperature, data):
    name = data.draw(st.sampled_from(list(counts)))
    more = dict(counts, **{name: counts[name] + data.draw(st.integers(1, 10**5))})
    before = mixing_rates(counts, strategy="temperature", cap=cap, temperature=temperature)
    after = mixing_rates(more, strategy="temperature", cap=cap, temperature=temperature)
    assert after[name] >= before[name] - 1e-12
    for other in counts:
        if other != name:
            assert after[other] <= before[other] + 1e-12


@SETTINGS
@given(counts=positive_counts_st)
def test_large_temperature_approaches_equal(counts):
    n = len(counts)
    spread = []
    for temperature in (1.0, 10.0, 1e6):
        rates = mixing_rates(counts, strategy="temperature", temperature=temperature)
        spread.append(max(rates.values()) - min(rates.values()))
    assert spread[0] >= spread[1] - 1e-12 >= spread[2] - 2e-12
    for rate in rates.values():
        assert rate == pytest.approx(1 / n, rel=1e-3)


@SETTINGS
@given(counts=counts_st, cap=st.integers(1, 10**6), temperature=temperature_st)
def test_cap_makes_capped_tasks_equal(counts, cap, temperature):
    rates = mixing_rates(counts, strategy="temperature", cap=cap, temperature=temperature)
    capped = [n for n, e in counts.items() if e >= cap]
    below = [n for n, e in counts.items() if e < cap]
    for name in capped:
        assert rates[name] == rates[capped[0]]
        for other in below:
            assert rates[name] >= rates[other]


@SETTINGS
@given(counts=st.lists(st.integers(0, 10**6), min_size=1, max_size=6))
def test_equal_ignores_counts(counts):
    named = {NAMES[i]: v for i, v in enumerate(counts)}
    rates = mixing_rates(named, strategy="equal")
    assert all(r == pytest.approx(1 / len(named)) for r in rates.values())


def test_order_is_scale_then_cap_then_temperature():
    # scale before cap: 0.5 * 100 = 50 < 60 stays 50 (capping first would give 30).
    assert unnormalized_rate(100, scale=0.5, cap=60) == 50
    rates = mixing_rates({"a": 100, "b": 50}, cap=60, scale={"a": 0.5})
    assert rates == pytest.approx({"a": 0.5, "b": 0.5})
    # cap before temperature: min(10000, 400) ** 0.5 = 20 against 100 ** 0.5 = 10
    # (temperature first would give 100 and 10, which the cap of 400 would not touch).
    assert unnormalized_rate(10_000, cap=400, temperature=2.0) == pytest.approx(20.0)
    rates = mixing_rates(
        {"big": 10_000, "small": 100}, strategy="temperature", cap=400, temperature=2
    )
    assert rates == pytest.approx({"big": 2 / 3, "small": 1 / 3})


def test_explicit_rates_are_renormalised_and_fixed_rates_mix_with_counts():
    assert mixing_rates({"a": 5, "b": 0}, strategy="explicit", explicit={"a": 1, "b": 3}) == {
        "a": 0.25,
        "b": 0.75,
    }
    # T5's unsupervised task: a fixed rate next to example counts, not capped or tempered.
    rates = mixing_rates({"glue": 100, "c4": 0}, cap=50, explicit={"c4": 150})
    assert rates == pytest.approx({"glue": 0.25, "c4": 0.75})


def test_small_temperature_does_not_overflow():
    rates = mixing_rates({"a": 10**6, "b": 10**6 - 1}, strategy="temperature", temperature=0.01)
    assert rates["a"] > rates["b"] > 0
    assert sum(rates.values()) == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("counts", "kwargs", "message"),
    [
        ({"a": -1}, {}, "integer >= 0"),
        ({"a": 1.5}, {}, "integer >= 0"),
        ({}, {}, "zero components"),
        ({"a": 0, "b": 0}, {}, "every mixing rate is zero"),
        ({"a": 1}, {"strategy": "temperature", "temperature": 0}, "temperature must be > 0"),
        ({"a": 1}, {"strategy": "temperature", "temperature": -2}, "temperature must be > 0"),
        ({"a": 1}, {"cap": 0}, "cap must be"),
        ({"a": 1}, {"cap": -5}, "cap must be"),
        ({"a": 1}, {"temperature": 2.0}, "use strategy='temperature'"),
        ({"a": 1}, {"strategy": "equal", "cap": 3}, "apply to the 'proportional'"),
        ({"a": 1}, {"strategy": "softmax"}, "unknown mixing strategy"),
        ({"a": 1}, {"scale": {"b": 2.0}}, "unknown components"),
        ({"a": 1}, {"scale": {"a": -2.0}}, "scale of 'a' must be >= 0"),
        ({"a": 1, "b": 1}, {"strategy": "explicit", "explicit": {"a": 1}}, "missing ['b']"),
        ({"a": 1}, {"strategy": "explicit", "explicit": {"a": -1}}, "must be >= 0"),
    ],
)
def test_bad_arguments_raise_clear_errors(counts, kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        mixing_rates(counts, **kwargs)
