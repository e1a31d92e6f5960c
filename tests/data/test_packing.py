"""Tests for the first-fit packer and the per-row segment arithmetic."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.packing import RowLayout, pack_first_fit, shift_right_per_segment


@st.composite
def packing_cases(draw):
    num_streams = draw(st.integers(1, 2))
    capacities = tuple(draw(st.integers(1, 12)) for _ in range(num_streams))
    sizes = draw(
        st.lists(
            st.tuples(*[st.integers(1, c) for c in capacities]),
            max_size=40,
        )
    )
    window = draw(st.integers(1, 5))
    return capacities, sizes, window


@settings(max_examples=100, deadline=None)
@given(packing_cases())
def test_first_fit_keeps_every_item_once_and_respects_capacities(case):
    capacities, sizes, window = case
    rows = list(pack_first_fit(((i, s) for i, s in enumerate(sizes)), capacities, window))
    flat = [i for row in rows for i in row]
    assert sorted(flat) == list(range(len(sizes)))
    for row in rows:
        assert row, "no empty rows"
        assert row == sorted(row), "items keep their order of arrival within a row"
        for stream, capacity in enumerate(capacities):
            assert sum(sizes[i][stream] for i in row) <= capacity
    if window == 1:
        assert flat == list(range(len(sizes))), "greedy packing keeps the stream order"


@settings(max_examples=100, deadline=None)
@given(packing_cases())
def test_first_fit_holds_at_most_the_window(case):
    """Memory bound: items taken but not yet emitted fit in max_open_rows rows."""
    capacities, sizes, window = case
    consumed = 0

    def items():
        nonlocal consumed
        for i, s in enumerate(sizes):
            consumed += 1
            yield i, s

    emitted = 0
    for row in pack_first_fit(items(), capacities, window):
        emitted += len(row)
        # before this row was yielded, at most `window` rows were open, plus the new item
        assert consumed - emitted <= window * max(capacities)


def test_first_fit_emits_fullest_row_when_window_is_full():
    sizes = [(6,), (7,), (5,), (4,)]
    rows = list(pack_first_fit(((i, s) for i, s in enumerate(sizes)), (10,), max_open_rows=2))
    # 5 fits neither open row ([6] has 4 free, [7] has 3): the fullest ([7]) goes out; then 4
    # fills the row holding 6 exactly, which goes out at once; [5] is flushed at the end.
    assert rows == [[1], [0, 3], [2]]


def test_first_fit_emits_full_rows_immediately():
    seen = []

    def items():
        for i in range(3):
            seen.append(i)
            yield i, (4, 1)

    for row in pack_first_fit(items(), (8, 2), max_open_rows=4):
        # two items fill both streams exactly: the row leaves before the next item is read
        assert row == [len(seen) - 2, len(seen) - 1]
        break


def test_first_fit_rejects_items_that_cannot_fit():
    with pytest.raises(ValueError, match="do not fit"):
        list(pack_first_fit([("a", (5,))], (4,)))
    with pytest.raises(ValueError, match="capacities"):
        list(pack_first_fit([], (0,)))
    with pytest.raises(ValueError, match="max_open_rows"):
        list(pack_first_fit([], (3,), max_open_rows=0))


def test_row_layout_places_segments_and_restarts_positions():
    rows = [[np.array([7, 8, 1]), np.array([9, 1])], [np.array([5, 1])]]
    layout = RowLayout(rows, num_rows=3, length=6)
    assert layout.tokens.tolist() == [7, 8, 1, 9, 1, 5, 1]
    assert layout.segment_ids.tolist() == [1, 1, 1, 2, 2, 1, 1]
    assert layout.positions.tolist() == [0, 1, 2, 0, 1, 0, 1]
    assert layout.scatter(layout.tokens).tolist() == [
        [7, 8, 1, 9, 1, 0],
        [5, 1, 0, 0, 0, 0],
        [0, 0, 0, 0, 0, 0],
    ]
    assert layout.scatter(layout.positions)[0].tolist() == [0, 1, 2, 0, 1, 0]
    assert layout.per_token([10, 20, 30]).tolist() == [10, 10, 10, 20, 20, 30, 30]
    assert layout.scatter(1).dtype == np.int32


def test_row_layout_rejects_overfull_rows():
    with pytest.raises(ValueError, match="length 3"):
        RowLayout([[np.array([1, 2]), np.array([3, 4])]], num_rows=1, length=3)
    with pytest.raises(ValueError, match="batch of 1"):
        RowLayout([[np.array([1])], [np.array([1])]], num_rows=1, length=3)


def test_shift_right_per_segment_matches_seqio_example():
    targets = np.array([3, 8, 1, 9, 1, 5, 4, 1], dtype=np.int32)
    layout = RowLayout([[targets[:3], targets[3:5], targets[5:]]], num_rows=1, length=10)
    shifted = shift_right_per_segment(layout.tokens, layout.positions)
    assert shifted.tolist() == [0, 3, 8, 0, 9, 0, 5, 4]
