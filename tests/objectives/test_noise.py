import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.objectives import (
    iid_noise_mask,
    random_prefix_noise_mask,
    random_segmentation,
    random_spans_helper,
    random_spans_noise_mask,
    span_counts,
)
from taskmix.objectives.transforms import count_spans

SETTINGS = settings(max_examples=60, deadline=None)


@SETTINGS
@given(
    batch=st.integers(1, 6),
    length=st.integers(2, 300),
    density=st.floats(0.01, 0.99),
    mean=st.floats(1.0, 10.0),
    seed=st.integers(0, 2**32),
)
def test_random_spans_mask_matches_t5_formulas(batch, length, density, mean, seed):
    mask = random_spans_noise_mask(batch, length, density, mean, np.random.default_rng(seed))
    num_noise = min(max(round(length * density), 1), length - 1)
    num_spans = min(max(1, round(num_noise / mean)), length - num_noise)
    assert mask.shape == (batch, length)
    assert (mask.sum(axis=1) == num_noise).all()
    assert (count_spans(mask) == num_spans).all()  # noise spans
    assert (count_spans(~mask) == num_spans).all()  # as many non-noise spans, interleaved
    assert not mask[:, 0].any() and mask[:, -1].all()  # starts with non-noise, ends with noise
    assert span_counts(length, density, mean) == (num_noise, num_spans)


def test_random_spans_mask_of_one_token_is_clean():
    mask = random_spans_noise_mask(3, 1, 0.15, 3.0, np.random.default_rng(0))
    assert mask.shape == (3, 1) and not mask.any()


def test_masks_differ_between_rows_and_draws():
    rng = np.random.default_rng(0)
    mask = random_spans_noise_mask(8, 200, 0.15, 3.0, rng)
    assert len({row.tobytes() for row in mask}) == 8
    assert not np.array_equal(mask, random_spans_noise_mask(8, 200, 0.15, 3.0, rng))


@SETTINGS
@given(
    batch=st.integers(1, 5),
    items=st.integers(1, 60),
    data=st.data(),
    seed=st.integers(0, 2**32),
)
def test_random_segmentation_partitions(batch, items, data, seed):
    segments = data.draw(st.integers(1, items))
    lengths = random_segmentation(batch, items, segments, np.random.default_rng(seed))
    assert lengths.shape == (batch, segments)
    assert (lengths >= 1).all() and (lengths.sum(axis=1) == items).all()


def test_random_segmentation_is_uniform_over_splits():
    # 5 items in 3 segments: C(4, 2) = 6 equally likely splits.
    lengths = random_segmentation(6000, 5, 3, np.random.default_rng(1))
    _, counts = np.unique(lengths, axis=0, return_counts=True)
    assert len(counts) == 6
    assert counts.min() > 850 and counts.max() < 1150


def test_random_segmentation_rejects_impossible_requests():
    with pytest.raises(ValueError):
        random_segmentation(1, 3, 4, np.random.default_rng(0))


def test_random_spans_helper_known_values():
    # T5's C4 setting: 568 raw tokens -> 512 inputs, 114 targets (both with EOS).
    assert random_spans_helper(512, 0.15, 3.0) == (568, 114)
    assert random_spans_helper(512, 0.5, 3.0)[1] <= 512  # density 0.5: targets fit inputs


@SETTINGS
@given(inputs_length=st.integers(8, 2000), density=st.floats(0.05, 0.6), mean=st.floats(1, 8))
def test_random_spans_helper_inputs_fit_exactly(inputs_length, density, mean):
    raw, targets = random_spans_helper(inputs_length, density, mean)
    noise = round(raw * density)
    spans = round(noise / mean)
    if density != 0.5:
        assert raw - noise + spans + 1 <= inputs_length
        bigger = round((raw + 1) * density)
        assert raw + 1 - bigger + round(bigger / mean) + 1 > inputs_length
        assert targets == noise + spans + 1


def test_iid_mask_density():
    mask = iid_noise_mask(50, 400, 0.15, np.random.default_rng(0))
    assert abs(mask.mean() - 0.15) < 0.01


def test_prefix_mask_is_a_prefix_of_valid_length():
    mask = random_prefix_noise_mask(500, 10, np.random.default_rng(0))
    sizes = mask.sum(axis=1)
    assert sizes.min() == 1 and sizes.max() == 9
    assert (mask == (np.arange(10)[None, :] < sizes[:, None])).all()
    assert not random_prefix_noise_mask(2, 1, np.random.default_rng(0)).any()


def test_prefix_mask_density_moves_the_window_and_keeps_it_valid():
    rng = np.random.default_rng(0)
    for length in (2, 3, 10, 101):
        for density in (0.01, 0.2, 0.5, 0.9, 0.99):
            sizes = random_prefix_noise_mask(2000, length, rng, density).sum(axis=1)
            assert sizes.min() >= 1 and sizes.max() <= length - 1
    sizes = random_prefix_noise_mask(20000, 101, rng, 0.2).sum(axis=1)
    # uniform over [1, 39]-ish, centred on 20.2: most of the range stays unused
    assert abs(sizes.mean() - 20.2) < 0.3 and sizes.max() <= 41
