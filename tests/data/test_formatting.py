import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.formatting import (
    bin_regression,
    format_fields,
    label_word,
    parse_label,
    parse_regression,
)
from taskmix.errors import RecordError


def test_glue_style_fields():
    record = {"sentence1": "A cat.", "sentence2": "A dog.", "_where": "f.jsonl:3"}
    assert format_fields("rte", record, ["sentence1", "sentence2"]) == (
        "rte sentence1: A cat. sentence2: A dog."
    )
    with pytest.raises(RecordError, match=r"f.jsonl:3: field 'question': missing"):
        format_fields("x", record, ["question"])


def test_label_words():
    labels = ["entailment", "neutral", "contradiction"]
    assert label_word({"label": 2}, "label", labels) == "contradiction"
    assert label_word({"label": "neutral"}, "label", labels) == "neutral"
    assert label_word({"label": -1}, "label", labels) == "<unk>"
    with pytest.raises(RecordError, match="out of range"):
        label_word({"label": 3}, "label", labels)
    assert parse_label(" neutral ", labels) == 1
    assert parse_label("banana", labels) == -1


@settings(max_examples=200, deadline=None)
@given(st.floats(min_value=0.0, max_value=5.0))
def test_regression_bins_to_nearest_fifth(score):
    text = bin_regression(score)
    value = float(text)
    assert len(text.split(".")[1]) == 1
    assert abs(value - score) <= 0.1 + 1e-9
    assert round(value * 5) == pytest.approx(value * 5)
    assert parse_regression(text) == value


def test_stsb_has_26_classes_and_bad_predictions_parse_to_default():
    assert len({bin_regression(i / 100) for i in range(0, 501)}) == 26
    assert parse_regression("banana", default=2.5) == 2.5
    assert parse_regression("nan") == 0.0


def test_regression_bins_match_t5_at_the_midpoints():
    """T5: ``tf.round(score * 5) / 5`` (half to even on the product), not round(score / 0.2)."""
    assert [bin_regression(x) for x in (0.3, 0.7, 1.9, 2.3, 4.3)] == [
        "0.4",
        "0.8",
        "2.0",
        "2.4",
        "4.4",
    ]
    grid = np.arange(0, 5.001, 0.01)
    t5 = [f"{v:.1f}" for v in np.round(grid * 5) / 5]
    assert [bin_regression(x) for x in grid] == t5
    # The check has teeth: the old formula disagrees with T5 somewhere on this grid.
    assert any(f"{round(x / 0.2) * 0.2:.1f}" != want for x, want in zip(grid, t5, strict=True))
