import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskmix.errors import ConfigError, RecordError
from taskmix.objectives import (
    OBJECTIVES,
    bert_style,
    deshuffling,
    drop_tokens,
    get_objective,
    lm,
    make_pretraining_task,
    mass_style,
    prefix_lm,
    span_corruption,
)

from .helpers import VOCAB, ListSource, context, tokens_batch

SETTINGS = settings(max_examples=30, deadline=None)
lengths = st.integers(1, 120)
seeds = st.integers(0, 2**32)


def _is_subsequence(part, whole) -> bool:
    it = iter(whole)
    return all(any(x == y for y in it) for x in part)


@SETTINGS
@given(length=lengths, seed=seeds, density=st.floats(0.05, 0.9), spans=st.booleans())
def test_drop_tokens_partitions_the_sequence(length, seed, density, spans):
    rng = np.random.default_rng(seed)
    tokens = tokens_batch(rng, 4, length)
    objective = drop_tokens(density, 3.0 if spans else None)
    inputs, targets = objective.apply(tokens, VOCAB, rng)
    for row, inp, tgt in zip(tokens, inputs.rows(), targets.rows(), strict=True):
        assert len(inp) + len(tgt) == length
        assert _is_subsequence(inp.tolist(), row.tolist())
        assert _is_subsequence(tgt.tolist(), row.tolist())
        assert sorted(inp.tolist() + tgt.tolist()) == sorted(row.tolist())


def test_drop_tokens_partition_is_positional():
    # Distinct tokens: a partition means every position lands in exactly one side.
    tokens = np.arange(3, 203, dtype=np.int32)[None, :]
    inputs, targets = drop_tokens().apply(tokens, VOCAB, np.random.default_rng(0))
    inp, tgt = set(inputs.rows()[0].tolist()), set(targets.rows()[0].tolist())
    assert not inp & tgt and inp | tgt == set(tokens[0].tolist())
    assert 15 <= len(tgt) <= 45  # ~15% of 200


@SETTINGS
@given(length=st.integers(2, 120), seed=seeds, density=st.sampled_from([1.0, 0.5]))
def test_deshuffling_targets_original_inputs_permutation(length, seed, density):
    rng = np.random.default_rng(seed)
    tokens = tokens_batch(rng, 3, length)
    inputs, targets = deshuffling(density).apply(tokens, VOCAB, rng)
    for row, inp, tgt in zip(tokens, inputs.rows(), targets.rows(), strict=True):
        assert tgt.tolist() == row.tolist()
        assert sorted(inp.tolist()) == sorted(row.tolist())


def test_deshuffling_actually_shuffles_and_partial_keeps_clean_tokens():
    tokens = np.arange(3, 103, dtype=np.int32)[None, :].repeat(4, axis=0)
    full, _ = deshuffling().apply(tokens, VOCAB, np.random.default_rng(0))
    assert all(r.tolist() != tokens[0].tolist() for r in full.rows())
    partial, _ = deshuffling(0.2).apply(tokens, VOCAB, np.random.default_rng(0))
    kept = np.mean([np.mean(r == tokens[0]) for r in partial.rows()])
    assert 0.75 < kept < 0.9  # ~80% untouched (+ the odd noise token landing in place)


def test_bert_style_corrupts_fifteen_percent_mostly_with_the_mask_token():
    rng = np.random.default_rng(0)
    tokens = tokens_batch(rng, 64, 250)
    inputs, targets = bert_style().apply(tokens, VOCAB, rng)
    got = np.stack(inputs.rows())
    assert np.array_equal(np.stack(targets.rows()), tokens)
    changed = got != tokens
    assert abs(changed.mean() - 0.15) < 0.01
    mask_token = got == VOCAB.sentinel_id(0)
    random = changed & ~mask_token
    assert abs(mask_token.sum() / changed.sum() - 0.9) < 0.02
    assert (got[random] >= 3).all() and (got[random] < VOCAB.base_vocab_size).all()
    # T5 draws random ids over the whole vocabulary when asked to.
    wide, _ = bert_style(random_prob=1.0, random_tokens_include_sentinels=True).apply(
        tokens, VOCAB, rng
    )
    assert (np.stack(wide.rows()) >= VOCAB.base_vocab_size).any()


def test_mass_style_uses_only_the_mask_token():
    rng = np.random.default_rng(1)
    tokens = tokens_batch(rng, 16, 200)
    inputs, targets = mass_style().apply(tokens, VOCAB, rng)
    got = np.stack(inputs.rows())
    changed = got != tokens
    assert (got[changed] == VOCAB.sentinel_id(0)).all()
    assert abs(changed.mean() - 0.15) < 0.02
    assert np.array_equal(np.stack(targets.rows()), tokens)


@SETTINGS
@given(length=lengths, seed=seeds)
def test_prefix_lm_splits_once(length, seed):
    rng = np.random.default_rng(seed)
    tokens = tokens_batch(rng, 5, length)
    inputs, targets = prefix_lm().apply(tokens, VOCAB, rng)
    for row, inp, tgt in zip(tokens, inputs.rows(), targets.rows(), strict=True):
        assert inp.tolist() + tgt.tolist() == row.tolist()
        if length >= 2:
            assert 1 <= len(inp) <= length - 1


@pytest.mark.parametrize("density", [0.15, 0.3, 0.5, 0.8])
def test_prefix_lm_noise_density_is_the_mean_prefix_fraction(density):
    """T5 calls the prefix the noise: on average ``density`` of the chunk becomes inputs."""
    length, batch = 200, 4000
    tokens = tokens_batch(np.random.default_rng(0), batch, length)
    objective = get_objective("prefix_lm", noise_density=density)
    inputs, targets = objective.apply(tokens, VOCAB, np.random.default_rng(7))
    fraction = inputs.lengths / length
    assert (inputs.lengths + targets.lengths == length).all()
    assert inputs.lengths.min() >= 1 and targets.lengths.min() >= 1
    # Split points are uniform over a window centred on density * length: the mean lies
    # within a few standard errors of the density (std error here is at most ~0.005).
    assert abs(fraction.mean() - density) < 4 * fraction.std() / np.sqrt(batch) + 1e-3
    assert len(np.unique(inputs.lengths)) > 20  # still random, not a fixed split


def test_prefix_lm_default_is_t5s_uniform_split_drawn_as_before():
    length, batch = 12, 3000
    tokens = tokens_batch(np.random.default_rng(0), batch, length)
    assert prefix_lm().params()["noise_density"] == 0.5
    inputs, _ = prefix_lm().apply(tokens, VOCAB, np.random.default_rng(3))
    # T5's random_prefix_noise_mask: prefix length uniform over [1, L - 1], one draw per row.
    expected = np.random.default_rng(3).integers(1, length, size=batch)
    assert inputs.lengths.tolist() == expected.tolist()
    assert set(np.unique(inputs.lengths)) == set(range(1, length))


@pytest.mark.parametrize("bad", [0.0, 1.0, -0.2, "half", float("nan")])
def test_prefix_lm_rejects_densities_outside_the_open_unit_interval(bad):
    with pytest.raises(ConfigError, match="noise_density"):
        prefix_lm(bad)


def test_lm_has_no_inputs_and_keeps_everything():
    chunks = [{"targets": np.arange(3, 10), "inputs": np.arange(3)}]
    (out,) = list(lm()(iter(chunks), context()))
    assert "inputs" not in out and out["targets"].tolist() == list(range(3, 10))


def test_preprocessor_groups_lengths_but_keeps_order():
    rng = np.random.default_rng(0)
    chunks = [
        {"targets": tokens_batch(rng, 1, n)[0], "id": i} for i, n in enumerate([9, 3, 9, 5, 3])
    ]
    objective = prefix_lm(batch_size=4)  # a full batch of 4, then a batch of 1
    out = list(objective(iter(chunks), context()))
    assert [e["id"] for e in out] == [0, 1, 2, 3, 4]
    for src, ex in zip(chunks, out, strict=True):
        assert ex["inputs"].tolist() + ex["targets"].tolist() == src["targets"].tolist()
        assert ex["inputs"].dtype == np.int32


def test_bad_records_name_where_and_empty_ones_are_counted():
    ctx = context()
    chunks = [{"targets": "text", "_where": "f.jsonl:3"}]
    with pytest.raises(RecordError, match=r"f.jsonl:3.*targets.*tokenize_no_eos"):
        list(span_corruption()(iter(chunks), ctx))
    skip = context(on_error="skip")
    good = {"targets": np.arange(3, 40)}
    out = list(span_corruption()(iter([*chunks, {"targets": np.array([], np.int32)}, good]), skip))
    assert len(out) == 1 and skip.report.total_skipped() == 1
    assert sum(skip.report.dropped.values()) == 1


def test_too_many_spans_for_the_sentinels_is_a_config_error():
    tokens = tokens_batch(np.random.default_rng(0), 1, 1000)
    with pytest.raises(ConfigError, match="100 sentinels"):
        span_corruption(0.5, 1.0).apply(tokens, VOCAB, np.random.default_rng(0))


def test_registry_builds_every_objective_and_rejects_unknowns():
    tokens = tokens_batch(np.random.default_rng(0), 2, 30)
    for name in OBJECTIVES:
        objective = get_objective(name)
        inputs, targets = objective.apply(tokens, VOCAB, np.random.default_rng(0))
        assert (inputs is None) == (name == "lm") and len(targets.rows()) == 2
    assert get_objective("span_corruption", noise_density=0.3).noise_density == 0.3
    with pytest.raises(ConfigError, match="unknown objective"):
        get_objective("bert")
    with pytest.raises(ConfigError, match="unknown parameter"):
        get_objective("prefix_lm", mean_noise_span_length=3.0)


@pytest.mark.parametrize("name", sorted(OBJECTIVES))
def test_every_objective_runs_in_a_pretraining_task(name):
    docs = [{"text": f"document number {i} " * (i % 7 + 1)} for i in range(40)]
    task = make_pretraining_task("pt", ListSource({"train": docs}), VOCAB, name, input_length=24)
    examples = list(task.get_dataset("train", seed=1))
    assert examples
    seq = task.metadata["sequence_length"]
    for ex in examples:
        assert ex["targets"][-1] == VOCAB.eos_id and len(ex["targets"]) <= max(seq.values())
        if name != "lm":
            assert ex["inputs"][-1] == VOCAB.eos_id and len(ex["inputs"]) <= seq["inputs"]
