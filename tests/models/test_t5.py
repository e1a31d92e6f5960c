"""T5 model family: config, presets, layers, packing, masks, variants."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from taskmix.errors import ConfigError
from taskmix.models import DecoderOnlyLM, T5Config, T5Model, build_model, preset
from taskmix.models.layers import relative_position_bucket
from tests.models.helpers import tiny_config


def shift_right(targets: torch.Tensor) -> torch.Tensor:
    return F.pad(targets, (1, 0))[:, :-1]


# --- config ----------------------------------------------------------------------------------
def test_presets_follow_the_spec_table():
    small = preset("small")
    assert (small.num_layers, small.d_model, small.d_ff, small.num_heads, small.d_kv) == (
        6,
        512,
        2048,
        8,
        64,
    )
    assert small.tie_word_embeddings and small.feed_forward_proj == "relu"
    xl = preset("3B")
    assert (xl.d_ff, xl.num_heads, xl.d_kv) == (16384, 32, 128)
    v11 = preset("small", version="1.1", vocab_size=500)
    assert not v11.tie_word_embeddings and v11.feed_forward_proj == "gated-gelu"
    assert v11.vocab_size == 500
    tiny = preset("tiny", architecture="prefix_lm")
    assert tiny.architecture == "prefix_lm" and tiny.num_layers == 2 and tiny.d_model == 128


def test_preset_and_config_errors_name_the_key():
    with pytest.raises(ConfigError, match="preset name"):
        preset("huge")
    with pytest.raises(ConfigError, match="feed_forward_proj"):
        tiny_config(feed_forward_proj="swish")
    with pytest.raises(ConfigError, match="architecture"):
        tiny_config(architecture="encoder_only")
    with pytest.raises(ConfigError, match="num_decoder_layers"):
        tiny_config(shared_encoder_decoder=True, num_decoder_layers=3)
    with pytest.raises(ConfigError, match="d_model"):
        tiny_config(d_model=0)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False},
        {"shared_encoder_decoder": True},
        {"architecture": "prefix_lm", "num_decoder_layers": 0},
    ],
)
def test_config_round_trips_through_hf_keys_and_dict(overrides):
    config = tiny_config(**overrides)
    assert T5Config.from_hf_config(config.to_hf_config()) == config
    assert T5Config.from_dict(config.to_dict()) == config


def test_from_hf_config_reads_transformers_own_json():
    transformers = pytest.importorskip("transformers")
    hf = transformers.T5Config(
        vocab_size=77,
        d_model=16,
        d_kv=4,
        d_ff=24,
        num_layers=3,
        num_decoder_layers=2,
        num_heads=2,
        feed_forward_proj="gated-gelu",
        tie_word_embeddings=False,
    ).to_dict()
    config = T5Config.from_hf_config(hf)
    assert (config.vocab_size, config.num_layers, config.num_decoder_layers) == (77, 3, 2)
    # transformers 5 writes tie_word_embeddings=True and keeps the real choice elsewhere
    assert config.tie_word_embeddings is False and config.is_gated


def test_from_hf_config_rejects_other_architectures():
    bert = {
        "model_type": "bert",
        "architectures": ["BertModel"],
        "hidden_size": 32,
        "vocab_size": 10,
    }
    with pytest.raises(ConfigError, match="not a T5 checkpoint"):
        T5Config.from_hf_config(bert)
    incomplete = tiny_config().to_hf_config()
    del incomplete["d_kv"]
    with pytest.raises(ConfigError, match="d_kv"):
        T5Config.from_hf_config(incomplete)


# --- layers ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bidirectional", [True, False])
def test_relative_position_buckets_match_transformers(bidirectional):
    modeling = pytest.importorskip("transformers.models.t5.modeling_t5")
    relative = torch.arange(-300, 301)[None, :]
    ours = relative_position_bucket(
        relative, bidirectional=bidirectional, num_buckets=32, max_distance=128
    )
    theirs = modeling.T5Attention._relative_position_bucket(relative, bidirectional, 32, 128)
    assert torch.equal(ours, theirs)
    assert ours.max() == 31 and ours.min() == 0


def test_loss_is_token_weighted_mean_and_backprops():
    model = T5Model(tiny_config())
    inputs = torch.randint(2, 96, (3, 7))
    targets = torch.randint(2, 96, (3, 5))
    targets[0, 3:] = 0
    weights = (targets > 0).float() * 2.0
    out = model(inputs, shift_right(targets), targets, decoder_loss_weights=weights)
    assert out.num_tokens.item() == pytest.approx(2.0 * (targets > 0).sum().item())
    assert out.loss.item() == pytest.approx(out.loss_sum.item() / out.num_tokens.item(), rel=1e-6)
    out.loss.backward()
    assert model.shared.weight.grad is not None and model.shared.weight.grad.abs().sum() > 0


def test_dropout_only_in_training():
    model = T5Model(tiny_config(dropout_rate=0.3))
    inputs, targets = torch.randint(2, 96, (2, 6)), torch.randint(2, 96, (2, 4))
    a = model(inputs, shift_right(targets)).logits
    b = model(inputs, shift_right(targets)).logits
    assert not torch.allclose(a, b)
    model.eval()
    assert torch.equal(
        model(inputs, shift_right(targets)).logits, model(inputs, shift_right(targets)).logits
    )


# --- packing ---------------------------------------------------------------------------------
def _pack(pieces: list[torch.Tensor], length: int):
    tokens = torch.zeros(1, length, dtype=torch.long)
    segments = torch.zeros(1, length, dtype=torch.long)
    positions = torch.zeros(1, length, dtype=torch.long)
    start = 0
    for i, piece in enumerate(pieces, start=1):
        n = len(piece)
        tokens[0, start : start + n] = piece
        segments[0, start : start + n] = i
        positions[0, start : start + n] = torch.arange(n)
        start += n
    return tokens, segments, positions


@pytest.mark.parametrize("shared", [False, True])
def test_packed_row_gives_each_example_the_same_logits(shared):
    model = T5Model(tiny_config(shared_encoder_decoder=shared)).eval()
    examples = [
        (torch.randint(2, 96, (n_in,)), torch.randint(2, 96, (n_out,)))
        for n_in, n_out in [(5, 3), (9, 6), (4, 4)]
    ]
    enc, enc_seg, enc_pos = _pack([x for x, _ in examples], 20)
    dec, dec_seg, dec_pos = _pack([y for _, y in examples], 15)
    # decoder inputs are shifted per segment: each segment starts with the start token 0
    dec_in, _, _ = _pack([shift_right(y[None])[0] for _, y in examples], 15)
    packed = model(enc, dec_in, dec, enc_seg, dec_seg, enc_pos, dec_pos)
    start, total = 0, 0.0
    for x, y in examples:
        single = model(x[None], shift_right(y[None]), y[None])
        got = packed.logits[0, start : start + len(y)]
        assert torch.allclose(got, single.logits[0], atol=1e-5), (
            (got - single.logits[0]).abs().max()
        )
        start += len(y)
        total += single.loss_sum.item()
    assert packed.loss_sum.item() == pytest.approx(total, rel=1e-5)
    assert packed.num_tokens.item() == sum(len(y) for _, y in examples)


def test_packing_matters_without_segment_ids():
    """Guard for the test above: dropping segment ids must change the result."""
    model = T5Model(tiny_config()).eval()
    x1, x2 = torch.randint(2, 96, (5,)), torch.randint(2, 96, (6,))
    enc, _, _ = _pack([x1, x2], 11)
    y = torch.randint(2, 96, (1, 3))
    alone = model(x1[None], shift_right(y)).logits
    mixed = model(enc, shift_right(y)).logits
    assert not torch.allclose(alone, mixed, atol=1e-3)


def test_decoder_only_packing():
    model = DecoderOnlyLM(tiny_config(architecture="decoder_only")).eval()
    seqs = [torch.randint(2, 96, (n,)) for n in (6, 4, 7)]
    targets, seg, pos = _pack(seqs, 18)
    inputs, _, _ = _pack([shift_right(s[None])[0] for s in seqs], 18)
    packed = model(inputs, targets, seg, pos).logits
    start = 0
    for s in seqs:
        single = model(shift_right(s[None]), s[None]).logits
        assert torch.allclose(packed[0, start : start + len(s)], single[0], atol=1e-5)
        start += len(s)


# --- masks of the decoder-only variants ------------------------------------------------------
def test_decoder_only_is_causal():
    model = DecoderOnlyLM(tiny_config(architecture="decoder_only")).eval()
    tokens = torch.randint(2, 96, (2, 10))
    changed = tokens.clone()
    changed[:, 6] = (changed[:, 6] + 1) % 94 + 2
    a, b = model(tokens).logits, model(changed).logits
    assert torch.allclose(a[:, :6], b[:, :6], atol=1e-6)
    assert not torch.allclose(a[:, 6:], b[:, 6:], atol=1e-4)


def test_prefix_lm_sees_the_whole_prefix_but_not_the_future_targets():
    model = DecoderOnlyLM(tiny_config(architecture="prefix_lm")).eval()
    tokens = torch.randint(2, 96, (1, 12))
    prefix = torch.zeros(1, 12, dtype=torch.long)
    prefix[:, :6] = 1
    base = model(tokens, decoder_causal_attention=prefix).logits

    later_prefix = tokens.clone()
    later_prefix[0, 4] = (later_prefix[0, 4] + 1) % 94 + 2
    out = model(later_prefix, decoder_causal_attention=prefix).logits
    assert not torch.allclose(out[:, :4], base[:, :4], atol=1e-4)  # earlier prefix sees position 4

    later_target = tokens.clone()
    later_target[0, 9] = (later_target[0, 9] + 1) % 94 + 2
    out = model(later_target, decoder_causal_attention=prefix).logits
    assert torch.allclose(out[:, :9], base[:, :9], atol=1e-6)  # nothing sees the future target

    causal = model(later_prefix).logits  # without the prefix mask it is a causal LM
    assert torch.allclose(causal[:, :4], model(tokens).logits[:, :4], atol=1e-6)


# --- shared encoder/decoder ------------------------------------------------------------------
def test_shared_variant_has_about_half_the_parameters():
    config = tiny_config(d_model=64, d_ff=256, d_kv=16, vocab_size=32)
    full = T5Model(config).num_parameters()
    shared_model = T5Model(config.replace(shared_encoder_decoder=True))
    shared = shared_model.num_parameters()
    assert 0.5 < shared / full < 0.65
    enc_q = shared_model.encoder.block[1].layer[0].SelfAttention.q.weight
    assert shared_model.decoder.block[1].layer[0].SelfAttention.q.weight is enc_q
    assert shared_model.decoder.block[1].layer[1].EncDecAttention.q.weight is not enc_q


def test_build_model_picks_the_class():
    assert isinstance(build_model(tiny_config()), T5Model)
    assert isinstance(build_model(tiny_config(architecture="decoder_only")), DecoderOnlyLM)
    assert isinstance(build_model(tiny_config(architecture="prefix_lm")), DecoderOnlyLM)


def test_tied_v10_scales_logits_and_untied_v11_has_lm_head():
    tied = T5Model(tiny_config())
    assert tied.lm_head is None
    untied = T5Model(tiny_config(tie_word_embeddings=False, feed_forward_proj="gated-gelu"))
    assert untied.lm_head is not None and "lm_head.weight" in untied.state_dict()
