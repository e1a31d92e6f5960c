"""Per-token task ids through the feature converters and packing (1 + index, 0 = padding)."""

from __future__ import annotations

import numpy as np
import pytest

from taskmix.data.feature_converters import (
    TASK_FEATURES,
    DecoderOnlyFeatureConverter,
    EncDecFeatureConverter,
    PrefixLMFeatureConverter,
)

TASKS = ["alpha", "beta", "gamma"]


def _examples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "inputs": np.append(rng.integers(3, 300, size=int(rng.integers(1, 9))), 1).astype(
                np.int32
            ),
            "targets": np.append(rng.integers(3, 300, size=int(rng.integers(1, 5))), 1).astype(
                np.int32
            ),
            "_task": TASKS[i % 3] if i % 7 else "not_listed",
        }
        for i, _ in enumerate(range(n))
    ]


def _expected_id(example):
    return TASKS.index(example["_task"]) + 1 if example["_task"] in TASKS else 0


CONVERTERS = {
    "encdec": lambda pack, names: EncDecFeatureConverter(24, 8, pack=pack, task_names=names),
    "decoder_only": lambda pack, names: DecoderOnlyFeatureConverter(
        32, pack=pack, task_names=names
    ),
    "prefix_lm": lambda pack, names: PrefixLMFeatureConverter(32, pack=pack, task_names=names),
}


@pytest.mark.parametrize("pack", [True, False])
@pytest.mark.parametrize("kind", sorted(CONVERTERS))
def test_every_token_carries_its_examples_task_id(kind, pack):
    examples = _examples(30)
    converter = CONVERTERS[kind](pack, TASKS)
    batches = list(converter.iter_batches(examples, 4))
    sides = ["encoder", "decoder"] if kind == "encdec" else ["decoder"]
    assert set(batches[0]) == set(converter.feature_names)
    assert [f for f in converter.feature_names if f in TASK_FEATURES] == [
        f"{side}_task_ids" for side in sides
    ]
    seen = []
    for batch in batches:
        for side in sides:
            ids, segments = batch[f"{side}_task_ids"], batch[f"{side}_segment_ids"]
            assert ids.dtype == np.int32 and ids.shape == segments.shape
            assert not ids[segments == 0].any(), "0 on padding"
            for r in range(ids.shape[0]):
                for s in range(1, int(segments[r].max(initial=0)) + 1):
                    values = set(ids[r][segments[r] == s].tolist())
                    assert len(values) == 1, "one task per segment"
                    if side == "decoder":
                        seen.append(values.pop())
    assert (
        seen == [_expected_id(e) for e in examples]
        if not pack
        else sorted(seen) == sorted(_expected_id(e) for e in examples)
    )


@pytest.mark.parametrize("kind", sorted(CONVERTERS))
def test_without_task_names_there_are_no_task_features(kind):
    converter = CONVERTERS[kind](True, None)
    batch = next(converter.iter_batches(_examples(5), 2))
    assert not set(batch) & set(TASK_FEATURES)
