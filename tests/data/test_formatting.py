import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.errors import RecordError
from taskmix.data.formatting import (
    bin_regression,
    format_fields,
    label_word,
    parse_label,
    parse_regression,
)


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
