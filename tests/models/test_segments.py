"""Attention within packed segments and per-token layers on real tokens only (``models/segments.py``)."""

from __future__ import annotations

import pytest
import torch

from taskmix.models import T5Model
from taskmix.models import segments as segments_module
from taskmix.models.segments import SegmentLayout, bucket_length
from tests.models.helpers import tiny_config


def packed_batch(rows: list[list[tuple[int, int]]], enc_len: int, dec_len: int, seed: int = 0):
    """Rows of (input length, target length) examples, packed left to right, padded after."""
    gen = torch.Generator().manual_seed(seed)
    batch = {
        name: torch.zeros(len(rows), length, dtype=torch.long)
        for name, length in [
            ("encoder_input_tokens", enc_len),
            ("encoder_segment_ids", enc_len),
            ("encoder_positions", enc_len),
            ("decoder_input_tokens", dec_len),
            ("decoder_target_tokens", dec_len),
            ("decoder_segment_ids", dec_len),
            ("decoder_positions", dec_len),
        ]
    }
    for r, examples in enumerate(rows):
        e = d = 0
        for seg, (n_in, n_out) in enumerate(examples, start=1):
            target = torch.randint(2, 96, (n_out,), generator=gen)
            batch["encoder_input_tokens"][r, e : e + n_in] = torch.randint(
                2, 96, (n_in,), generator=gen
            )
            batch["encoder_segment_ids"][r, e : e + n_in] = seg
            batch["encoder_positions"][r, e : e + n_in] = torch.arange(n_in)
            batch["decoder_target_tokens"][r, d : d + n_out] = target
            batch["decoder_input_tokens"][r, d + 1 : d + n_out] = target[:-1]  # start token 0
            batch["decoder_segment_ids"][r, d : d + n_out] = seg
            batch["decoder_positions"][r, d : d + n_out] = torch.arange(n_out)
            e, d = e + n_in, d + n_out
    return batch


ROWS = [
    [(5, 3), (9, 6), (4, 4), (20, 2)],
    [(40, 7), (3, 1)],
    [],  # a row of padding only
    [(2, 2), (2, 2), (2, 2), (2, 2), (2, 2)],
]


def _run(model: T5Model, batch: dict, segmented: bool):
    model.segmented_attention = segmented
    model.zero_grad()
    out = model(**batch)
    out.loss_sum.backward()
    return out, {n: p.grad.clone() for n, p in model.named_parameters()}


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_segmented_attention_matches_dense_outputs_and_gradients(version):
    torch.manual_seed(0)
    gated = "gated-gelu" if version == "1.1" else "relu"
    model = T5Model(tiny_config(dropout_rate=0.0, feed_forward_proj=gated)).train()
    batch = packed_batch(ROWS, enc_len=64, dec_len=24)
    layout = model.segment_layout(
        batch["encoder_segment_ids"],
        batch["decoder_segment_ids"],
        batch["encoder_positions"],
        batch["decoder_positions"],
    )
    assert layout is not None and len(layout.encoder.shapes) > 1  # several buckets in play
    for side in (layout.encoder, layout.decoder):  # extra rows (padding) computed, then dropped
        assert side.num_real < side.tokens.numel() and side.tokens.numel() % 64 == 0
    dense, dense_grads = _run(model, batch, segmented=False)
    seg, seg_grads = _run(model, batch, segmented=True)
    real = batch["decoder_target_tokens"] > 0
    assert torch.allclose(seg.logits[real], dense.logits[real], atol=1e-5)
    assert not seg.logits[~real].any()  # the extra rows leave no logits behind
    assert seg.loss_sum.item() == pytest.approx(dense.loss_sum.item(), rel=1e-6)
    for name, grad in dense_grads.items():
        assert torch.allclose(seg_grads[name], grad, atol=1e-5, rtol=1e-4), name


def test_manual_attention_under_dropout_is_the_same_attention(monkeypatch):
    """With dropout on, the CPU path computes attention by hand (to use the cheap mask); with
    the mask itself disabled it must equal SDPA's result."""
    torch.manual_seed(0)
    model = T5Model(tiny_config(dropout_rate=0.0)).train()
    batch = packed_batch(ROWS, enc_len=64, dec_len=24)
    reference = model(**batch).logits
    for m in model.modules():
        if hasattr(m, "n_heads"):  # Attention: turn on its dropout only
            m.dropout = 0.3
    monkeypatch.setattr(segments_module, "probability_dropout", lambda x, p, training: x)
    assert torch.allclose(model(**batch).logits, reference, atol=1e-5)


def test_layout_falls_back_to_dense_when_it_must_or_should():
    ids = torch.tensor([[1, 1, 2, 2, 1, 0]])  # segment 1 in two runs
    assert SegmentLayout.build(ids, torch.tensor([[1, 2, 0]])) is None
    unpaired = SegmentLayout.build(torch.tensor([[1, 1, 2, 0]]), torch.tensor([[1, 1, 0, 0]]))
    assert unpaired is None
    full = torch.ones(2, 32, dtype=torch.long)  # one example per row: nothing to save
    assert SegmentLayout.build(full, torch.ones(2, 8, dtype=torch.long)) is None
    many = torch.arange(128).div(16, rounding_mode="floor")[None] + 1  # 8 examples of 16 tokens
    assert SegmentLayout.build(many, torch.arange(1, 9)[None]) is not None


def test_positions_that_do_not_count_up_use_the_dense_path():
    model = T5Model(tiny_config()).eval()
    batch = packed_batch(ROWS, enc_len=64, dec_len=24)
    shifted = batch["encoder_positions"].clone()
    shifted[0, 1] += 3
    args = (batch["encoder_segment_ids"], batch["decoder_segment_ids"])
    assert model.segment_layout(*args, batch["encoder_positions"], None) is not None
    assert model.segment_layout(*args, shifted, None) is None


def test_bucket_lengths():
    assert [bucket_length(n, 512) for n in (1, 16, 17, 64, 65, 97, 200)] == [
        16,
        16,
        32,
        64,
        96,
        144,
        216,
    ]
    assert bucket_length(300, 256) == 256


def test_loss_weights_on_padding_take_the_dense_path():
    """The packed path drops padding rows; a caller weighting a padding position still gets the
    dense result."""
    torch.manual_seed(0)
    model = T5Model(tiny_config(dropout_rate=0.0)).eval()
    batch = packed_batch(ROWS, enc_len=64, dec_len=24)
    weights = (batch["decoder_segment_ids"] > 0).float()
    weights[2, 0] = 1.0  # row 2 is all padding
    packed = model(**batch, decoder_loss_weights=weights)
    model.segmented_attention = False
    dense = model(**batch, decoder_loss_weights=weights)
    assert packed.num_tokens.item() == dense.num_tokens.item() == weights.sum().item()
    assert packed.loss_sum.item() == pytest.approx(dense.loss_sum.item(), rel=1e-6)
