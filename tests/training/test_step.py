"""One training step's arithmetic: gradient accumulation and the throughput's token count."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from taskmix.data.feature_converters import (
    EncDecFeatureConverter,
    PrefixLMFeatureConverter,
    to_torch,
)
from taskmix.training.batches import non_pad_tokens
from taskmix.training.trainer import accumulate_gradients


def _examples(n, seed=0):
    rng = np.random.default_rng(seed)
    return [
        {
            "inputs": rng.integers(3, 300, size=int(rng.integers(3, 20))).astype(np.int32),
            "targets": rng.integers(3, 300, size=int(rng.integers(2, 8))).astype(np.int32),
        }
        for _ in range(n)
    ]


def _model():
    from taskmix.models import build_model, preset

    torch.manual_seed(0)
    sizes = {"d_model": 16, "d_ff": 32, "d_kv": 8, "num_heads": 2, "num_layers": 1}
    config = preset("tiny", version="1.1", vocab_size=384, dropout_rate=0.0, **sizes)
    return build_model(config).train()


def _grads(model, micro):
    model.zero_grad(set_to_none=True)
    weight = sum(float(b["decoder_loss_weights"].sum()) for b in micro)
    loss_sum = accumulate_gradients(model, micro, weight=weight)
    return loss_sum / weight, {n: p.grad.clone() for n, p in model.named_parameters()}


def test_two_micro_batches_of_n_equal_one_batch_of_2n():
    converter = EncDecFeatureConverter(24, 8, pack=False)
    full = converter.pad_batch_to_longest(_examples(8))
    halves = [{k: v[:4] for k, v in full.items()}, {k: v[4:] for k, v in full.items()}]
    # the halves hold different numbers of target tokens: a per-micro-batch mean would differ
    assert halves[0]["decoder_loss_weights"].sum() != halves[1]["decoder_loss_weights"].sum()
    model = _model()
    loss_one, grads_one = _grads(model, [to_torch(full)])
    loss_two, grads_two = _grads(model, [to_torch(h) for h in halves])
    assert loss_two == pytest.approx(loss_one, abs=1e-6)
    for name, grad in grads_one.items():
        torch.testing.assert_close(grads_two[name], grad, atol=1e-6, rtol=1e-5, msg=name)


def test_non_pad_tokens_counts_inputs_and_targets_like_the_bench():
    examples = _examples(5, seed=1)
    expected = sum(len(e["inputs"]) + len(e["targets"]) for e in examples)  # bench's count
    encdec = next(EncDecFeatureConverter(64, 16).iter_batches(examples, 4))
    assert non_pad_tokens(encdec) == expected
    prefix_lm = next(PrefixLMFeatureConverter(80).iter_batches(examples, 4))
    assert non_pad_tokens(prefix_lm) == expected
