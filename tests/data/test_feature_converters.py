"""Tests for the feature converters: seqio's semantics, packing invariants, overflow policies."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.data.feature_converters import (
    DecoderOnlyFeatureConverter,
    EncDecFeatureConverter,
    PrefixLMFeatureConverter,
    pad_batch_to_longest,
    to_torch,
)
from taskmix.data.report import ErrorReport
from taskmix.errors import RecordError

EOS = 1


def make_example(inputs, targets, **extra):
    return {
        "inputs": np.asarray(inputs, dtype=np.int32),
        "targets": np.asarray(targets, dtype=np.int32),
        **extra,
    }


@st.composite
def example_lists(draw, max_inputs=12, max_targets=8, max_count=25):
    """Examples whose tokens are 3.. and end in EOS, like the output of ``tokenize``."""
    count = draw(st.integers(0, max_count))
    examples = []
    for _ in range(count):
        n_in = draw(st.integers(0, max_inputs - 1))
        n_tg = draw(st.integers(0, max_targets - 1))
        inputs = draw(st.lists(st.integers(3, 300), min_size=n_in, max_size=n_in)) + [EOS]
        targets = draw(st.lists(st.integers(3, 300), min_size=n_tg, max_size=n_tg)) + [EOS]
        examples.append(make_example(inputs, targets, inputs_pretokenized="ignored"))
    return examples


def segments(tokens: np.ndarray, segment_ids: np.ndarray) -> list[np.ndarray]:
    """The tokens of each segment id 1..k of a row, in id order."""
    return [tokens[segment_ids == k] for k in range(1, int(segment_ids.max(initial=0)) + 1)]


def assert_segment_layout(segment_ids: np.ndarray, positions: np.ndarray) -> None:
    """Segments are contiguous runs 1, 2, ..., k then padding 0; positions restart at 0."""
    real = segment_ids > 0
    n = int(real.sum())
    assert real[:n].all() and not real[n:].any(), "padding only at the end"
    ids = segment_ids[:n]
    assert ids[0] == 1 if n else True
    assert np.all(np.diff(ids) >= 0) and np.all(np.diff(ids) <= 1), "ids 1..k in order, contiguous"
    for k in range(1, int(ids.max(initial=0)) + 1):
        assert positions[segment_ids == k].tolist() == list(range(int((segment_ids == k).sum())))
    assert not positions[n:].any()


# ----- exact seqio examples ------------------------------------------------------------------

SEQIO_EXAMPLES = [make_example([7, 8, 5, 1], [3, 9, 1]), make_example([8, 4, 9, 3, 1], [4, 1])]


def test_encdec_matches_seqio_docstring_example():
    (row,) = EncDecFeatureConverter(10, 7).pack_rows(SEQIO_EXAMPLES)
    expected = {
        "encoder_input_tokens": [7, 8, 5, 1, 8, 4, 9, 3, 1, 0],
        "encoder_segment_ids": [1, 1, 1, 1, 2, 2, 2, 2, 2, 0],
        "encoder_positions": [0, 1, 2, 3, 0, 1, 2, 3, 4, 0],
        "decoder_target_tokens": [3, 9, 1, 4, 1, 0, 0],
        "decoder_input_tokens": [0, 3, 9, 0, 4, 0, 0],
        "decoder_loss_weights": [1, 1, 1, 1, 1, 0, 0],
        "decoder_segment_ids": [1, 1, 1, 2, 2, 0, 0],
        "decoder_positions": [0, 1, 2, 0, 1, 0, 0],
    }
    assert {k: v.tolist() for k, v in row.items()} == expected
    assert all(v.dtype == np.int32 for v in row.values())


def test_prefix_lm_matches_seqio_semantics():
    (row,) = PrefixLMFeatureConverter(15).pack_rows(SEQIO_EXAMPLES)
    assert row["decoder_target_tokens"].tolist() == [7, 8, 5, 1, 3, 9, 1, 8, 4, 9, 3, 1, 4, 1, 0]
    assert row["decoder_input_tokens"].tolist() == [0, 7, 8, 5, 1, 3, 9, 0, 8, 4, 9, 3, 1, 4, 0]
    assert row["decoder_loss_weights"].tolist() == [0, 0, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0, 1, 1, 0]
    assert row["decoder_positions"].tolist() == [0, 1, 2, 3, 4, 5, 6, 0, 1, 2, 3, 4, 5, 6, 0]
    assert row["decoder_segment_ids"].tolist() == [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 0]
    assert row["decoder_causal_attention"].tolist() == [
        1, 1, 1, 1, 1, 0, 0, 1, 1, 1, 1, 1, 1, 0, 0
    ]  # fmt: skip


def test_decoder_only_lm_on_targets_only_examples():
    examples = [{"targets": np.array([3, 9, 1], np.int32)}, {"targets": np.array([4, 1], np.int32)}]
    (row,) = DecoderOnlyFeatureConverter(6).pack_rows(examples)
    assert row["decoder_target_tokens"].tolist() == [3, 9, 1, 4, 1, 0]
    assert row["decoder_input_tokens"].tolist() == [0, 3, 9, 0, 4, 0]
    assert row["decoder_loss_weights"].tolist() == [1, 1, 1, 1, 1, 0]
    assert row["decoder_positions"].tolist() == [0, 1, 2, 0, 1, 0]
    assert row["decoder_segment_ids"].tolist() == [1, 1, 1, 2, 2, 0]
    assert "decoder_causal_attention" not in row


# ----- packing invariants (hypothesis) -------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(example_lists(), st.integers(1, 4))
def test_encdec_packing_keeps_every_token_and_never_mixes_segments(examples, window):
    converter = EncDecFeatureConverter(12, 8, max_open_rows=window)
    rows = list(converter.pack_rows(examples))
    recovered = []
    for row in rows:
        enc_seg, dec_seg = row["encoder_segment_ids"], row["decoder_segment_ids"]
        assert_segment_layout(enc_seg, row["encoder_positions"])
        assert_segment_layout(dec_seg, row["decoder_positions"])
        # inputs and targets of an example share a row and a segment id
        assert enc_seg.max() == dec_seg.max() >= 1
        ins = segments(row["encoder_input_tokens"], enc_seg)
        tgs = segments(row["decoder_target_tokens"], dec_seg)
        recovered += [(i.tolist(), t.tolist()) for i, t in zip(ins, tgs, strict=True)]
        # teacher forcing: shifted right within each segment, 0 at every segment start
        expected_inputs = np.concatenate([np.concatenate([[0], t[:-1]]) for t in tgs])
        n = len(expected_inputs)
        assert row["decoder_input_tokens"][:n].tolist() == expected_inputs.tolist()
        assert not row["decoder_input_tokens"][n:].any()
        # loss only on real target tokens
        assert row["decoder_loss_weights"].tolist() == (dec_seg > 0).astype(int).tolist()
        assert not row["encoder_input_tokens"][enc_seg == 0].any()
    original = [(e["inputs"].tolist(), e["targets"].tolist()) for e in examples]
    assert sorted(recovered) == sorted(original)
    if window == 1:
        assert recovered == original
    assert converter.report.truncated == {} and converter.report.dropped == {}


@settings(max_examples=40, deadline=None)
@given(example_lists(max_inputs=8, max_targets=6), st.booleans(), st.integers(1, 3))
def test_decoder_only_packing(examples, targets_only, window):
    converter = DecoderOnlyFeatureConverter(
        14, loss_on_targets_only=targets_only, max_open_rows=window
    )
    recovered = []
    for row in converter.pack_rows(examples):
        seg, pos = row["decoder_segment_ids"], row["decoder_positions"]
        assert_segment_layout(seg, pos)
        seqs = segments(row["decoder_target_tokens"], seg)
        recovered += [s.tolist() for s in seqs]
        shifted = np.concatenate([np.concatenate([[0], s[:-1]]) for s in seqs])
        assert row["decoder_input_tokens"][: len(shifted)].tolist() == shifted.tolist()
        weights = row["decoder_loss_weights"]
        assert not weights[seg == 0].any()
        if not targets_only:
            assert weights[seg > 0].all()
    original = [e["inputs"].tolist() + e["targets"].tolist() for e in examples]
    assert sorted(recovered) == sorted(original)
    if window == 1:
        assert recovered == original
    if targets_only:  # loss weights sum to the number of target tokens
        total = sum(int(r["decoder_loss_weights"].sum()) for r in converter.pack_rows(examples))
        assert total == sum(len(e["targets"]) for e in examples)


@settings(max_examples=40, deadline=None)
@given(example_lists(max_inputs=8, max_targets=6))
def test_prefix_lm_causal_attention_marks_exactly_the_prefix(examples):
    converter = PrefixLMFeatureConverter(14, max_open_rows=1)
    rows = list(converter.pack_rows(examples))
    index = 0
    for row in rows:
        seg = row["decoder_segment_ids"]
        for k in range(1, int(seg.max()) + 1):
            example = examples[index]
            index += 1
            n_in, n_tg = len(example["inputs"]), len(example["targets"])
            expected_visible = [1] * (n_in + 1) + [0] * (n_tg - 1)
            assert row["decoder_causal_attention"][seg == k].tolist() == expected_visible
            assert row["decoder_loss_weights"][seg == k].tolist() == [0] * n_in + [1] * n_tg
        assert not row["decoder_causal_attention"][seg == 0].any()
    assert index == len(examples)


@settings(max_examples=40, deadline=None)
@given(
    example_lists(max_inputs=8, max_targets=6),
    st.integers(1, 4),
    st.sampled_from(["encdec", "prefix"]),
)
def test_batches_are_the_rows_stacked(examples, batch_size, kind):
    """iter_batches builds whole batches at once; it must agree with pack_rows row by row."""
    make = {
        "encdec": lambda: EncDecFeatureConverter(10, 8, max_open_rows=3),
        "prefix": lambda: PrefixLMFeatureConverter(14, max_open_rows=3),
    }[kind]
    rows = list(make().pack_rows(examples))
    batches = list(make().iter_batches(examples, batch_size))
    assert len(batches) == -(-len(rows) // batch_size)
    for name in make().feature_names:
        stacked = np.concatenate([b[name] for b in batches]) if batches else np.zeros((0,))
        assert stacked.dtype == np.int32 or not batches
        assert stacked[: len(rows)].tolist() == [r[name].tolist() for r in rows]
        assert not stacked[len(rows) :].any(), "filler rows are all zero"


def test_packing_is_dense_on_many_short_examples():
    rng = np.random.default_rng(0)
    examples = [
        make_example(rng.integers(3, 99, size=rng.integers(2, 40)), rng.integers(3, 99, size=3))
        for _ in range(400)
    ]
    rows = list(EncDecFeatureConverter(128, 32).pack_rows(examples))
    density = np.mean([(r["encoder_segment_ids"] > 0).mean() for r in rows])
    assert density > 0.9


# ----- overflow policies ---------------------------------------------------------------------


def long_and_short_examples():
    return [
        make_example([5] * 3 + [1], [6, 1]),  # fits
        make_example([5] * 9 + [1], [6, 1]),  # inputs too long
        make_example([5, 1], [6] * 7 + [1]),  # targets too long
        make_example([5] * 9 + [1], [6] * 7 + [1]),  # both too long
    ]


def test_truncate_counts_and_cuts_without_re_adding_eos():
    report = ErrorReport()
    converter = EncDecFeatureConverter(6, 4, pack=False, report=report)
    rows = list(converter.pack_rows(long_and_short_examples()))
    assert len(rows) == 4
    assert converter.report is report
    assert report.truncated == {"inputs": 2, "targets": 2}
    assert rows[1]["encoder_input_tokens"].tolist() == [5] * 6  # cut, no EOS re-added
    assert rows[2]["decoder_target_tokens"].tolist() == [6] * 4
    assert rows[2]["decoder_loss_weights"].tolist() == [1] * 4


def test_drop_counts_one_per_example():
    converter = EncDecFeatureConverter(6, 4, overflow="drop")
    rows = list(converter.pack_rows(long_and_short_examples()))
    assert sum(int(r["encoder_segment_ids"].max()) for r in rows) == 1
    assert converter.report.dropped == {"inputs": 2, "targets": 1}
    assert converter.report.truncated == {}


def test_counts_are_the_converters_state_and_survive_a_resume():
    """What a batch pipeline saves with a checkpoint: the converter's counts, restored in place."""
    examples = long_and_short_examples()
    converter = EncDecFeatureConverter(6, 4, pack=False)
    list(converter.pack_rows(examples[:2]))
    state = json.loads(json.dumps(converter.state_dict()))
    resumed = EncDecFeatureConverter(6, 4, pack=False)
    held = resumed.report
    resumed.load_state_dict(state)
    list(resumed.pack_rows(examples[2:]))
    list(converter.pack_rows(examples[2:]))
    assert resumed.report is held
    assert resumed.report.as_dict() == converter.report.as_dict()
    assert resumed.report.summary() == {"skipped": 0, "truncated": 4, "dropped": 0}
    with pytest.raises(ValueError, match="not a feature converter state"):
        resumed.load_state_dict({"examples": {}})
    assert resumed.report.summary()["truncated"] == 4  # unchanged by the bad state


def test_decoder_only_truncates_the_concatenation():
    converter = PrefixLMFeatureConverter(5, pack=False)
    (row,) = converter.pack_rows([make_example([7, 8, 9, 1], [3, 4, 1])])
    assert row["decoder_target_tokens"].tolist() == [7, 8, 9, 1, 3]
    assert row["decoder_loss_weights"].tolist() == [0, 0, 0, 0, 1]
    assert row["decoder_causal_attention"].tolist() == [1, 1, 1, 1, 1]
    assert converter.report.truncated == {"inputs+targets": 1}


# ----- batching ------------------------------------------------------------------------------


def test_iter_batches_pads_the_last_batch_with_zero_rows_or_drops_it():
    examples = [make_example([5, 1], [6, 1]) for _ in range(5)]
    converter = EncDecFeatureConverter(4, 3, pack=False)
    batches = list(converter.iter_batches(examples, batch_size=2))
    assert len(batches) == 3
    assert set(batches[0]) == set(EncDecFeatureConverter.FEATURES)
    assert all(v.shape == (2, 4) for k, v in batches[0].items() if k.startswith("encoder"))
    assert all(v.shape == (2, 3) for k, v in batches[0].items() if k.startswith("decoder"))
    last = batches[-1]
    assert last["encoder_segment_ids"].tolist() == [[1, 1, 0, 0], [0, 0, 0, 0]]
    assert not any(v[1].any() for v in last.values())
    assert len(list(converter.iter_batches(examples, 2, drop_remainder=True))) == 2
    with pytest.raises(ValueError, match="batch_size"):
        list(converter.iter_batches(examples, 0))


def test_unpacked_rows_hold_one_example_with_segment_id_one():
    examples = [make_example([5, 5, 1], [6, 1]), make_example([5, 1], [6, 6, 1])]
    rows = list(EncDecFeatureConverter(4, 4, pack=False).pack_rows(examples))
    assert [r["encoder_segment_ids"].tolist() for r in rows] == [[1, 1, 1, 0], [1, 1, 0, 0]]
    assert [r["decoder_positions"].tolist() for r in rows] == [[0, 1, 0, 0], [0, 1, 2, 0]]


def test_pad_batch_to_longest():
    examples = [make_example([5, 5, 1], [6, 1]), make_example([5, 1], [6, 6, 6, 1])]
    batch = pad_batch_to_longest(examples)
    assert batch["encoder_input_tokens"].tolist() == [[5, 5, 1], [5, 1, 0]]
    assert batch["decoder_target_tokens"].tolist() == [[6, 1, 0, 0], [6, 6, 6, 1]]
    assert batch["decoder_input_tokens"].tolist() == [[0, 6, 0, 0], [0, 6, 6, 6]]
    prefix = PrefixLMFeatureConverter(6, pack=False).pad_batch_to_longest(examples)
    assert prefix["decoder_target_tokens"].shape == (2, 6)
    assert PrefixLMFeatureConverter(5).report.truncated == {}
    truncating = PrefixLMFeatureConverter(5, pack=False)
    assert truncating.pad_batch_to_longest(examples)["decoder_target_tokens"].shape == (2, 5)
    assert truncating.report.truncated == {"inputs+targets": 1}


def test_to_torch():
    torch = pytest.importorskip("torch")
    batch = next(EncDecFeatureConverter(10, 7).iter_batches(SEQIO_EXAMPLES, 2))
    tensors = to_torch(batch, "cpu")
    assert tensors["encoder_input_tokens"].dtype == torch.long
    assert tensors["decoder_target_tokens"].tolist() == batch["decoder_target_tokens"].tolist()


# ----- bad input -----------------------------------------------------------------------------


def test_bad_examples_raise_record_errors_naming_where():
    converter = EncDecFeatureConverter(8, 8)
    with pytest.raises(RecordError, match=r"a\.jsonl:3.*'targets'.*missing"):
        list(converter.pack_rows([{"inputs": np.array([5, 1]), "_where": "a.jsonl:3"}]))
    with pytest.raises(RecordError, match="tokenize"):
        list(converter.pack_rows([{"inputs": "text", "targets": np.array([1])}]))
    with pytest.raises(RecordError, match="empty"):
        list(converter.pack_rows([make_example([5, 1], [])]))
    with pytest.raises(RecordError, match="1-D integer"):
        list(converter.pack_rows([make_example([5, 1], [1]) | {"inputs": np.ones((2, 2))}]))
    with pytest.raises(RecordError, match="token ids"):
        list(converter.pack_rows([make_example([5, -1], [1])]))
    with pytest.raises(RecordError, match="prefix LM needs inputs"):
        list(PrefixLMFeatureConverter(8).pack_rows([{"targets": np.array([3, 1])}]))


def test_on_error_skip_counts_skipped_examples():
    converter = EncDecFeatureConverter(8, 8, on_error="skip")
    rows = list(converter.pack_rows([{"inputs": np.array([5, 1])}, make_example([5, 1], [6, 1])]))
    assert len(rows) == 1 and rows[0]["encoder_segment_ids"].max() == 1
    assert converter.report.total_skipped() == 1


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="overflow"):
        EncDecFeatureConverter(8, 8, overflow="wrap")
    with pytest.raises(ValueError, match="input_length"):
        EncDecFeatureConverter(0, 8)
    with pytest.raises(ValueError, match="length"):
        DecoderOnlyFeatureConverter(0)
