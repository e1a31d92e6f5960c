"""Greedy decoding (cached == uncached == transformers), ensembles, rank classification."""

from __future__ import annotations

import functools

import pytest
import torch
import torch.nn.functional as F

from taskmix.errors import TaskmixError
from taskmix.models import DecoderOnlyLM, T5Model, generate
from taskmix.models.generate import ensemble_greedy, greedy_decode, score_options
from taskmix.models.hf import save_hf_checkpoint
from tests.models.helpers import tiny_config

EOS = 1


V11 = {"feed_forward_proj": "gated-gelu", "tie_word_embeddings": False}


@functools.cache
def _stopping_model(flavour: str) -> tuple[T5Model, torch.Tensor, torch.Tensor]:
    torch.manual_seed(99)
    return _model_that_stops_sometimes(**(V11 if flavour == "v1.1" else {}))


def _model_that_stops_sometimes(**overrides) -> tuple[T5Model, torch.Tensor, torch.Tensor]:
    """A random model whose EOS logit is boosted until some rows end early and some do not, so
    per-row stopping is exercised. Returns (model, inputs, greedy output)."""
    model = T5Model(tiny_config(**overrides)).eval()
    inputs = torch.randint(2, 96, (8, 10))
    inputs[2, 6:] = 0
    inputs[5, 3:] = 0
    head = model.shared.weight if model.lm_head is None else model.lm_head.weight
    with torch.no_grad():
        head[0] = 0.0  # random tied models otherwise echo the start/pad token forever
        if model.lm_head is None:
            head.mul_(0.05)  # and a large tied embedding makes them echo their last token
    original = head.detach().clone()
    for boost in torch.linspace(1.0, 6.0, 11):
        with torch.no_grad():
            head[EOS] = original[EOS] * boost
        out = greedy_decode(model, inputs, max_length=12)
        ended = (out == EOS).any(1)
        late = (out[:, 1:] == EOS).any(1)  # some row ends after its first token
        varied = len(set(out.flatten().tolist())) > 4  # not a degenerate echo of one token
        if 0 < int(ended.sum()) < len(out) and bool(late.any()) and varied:
            return model, inputs, out
    raise AssertionError("could not make a model that stops on some rows only")


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_cached_equals_uncached_and_stops_per_row(flavour):
    model, inputs, cached = _stopping_model(flavour)
    uncached = greedy_decode(model, inputs, max_length=12, use_cache=False)
    assert torch.equal(cached, uncached)
    assert cached.shape == (8, 12)
    for row in cached:
        hits = (row == EOS).nonzero()
        if len(hits):
            assert (row[int(hits[0]) + 1 :] == 0).all()  # padding after EOS


def test_greedy_matches_transformers_generate(tmp_path):
    transformers = pytest.importorskip("transformers")
    transformers.utils.logging.set_verbosity_error()
    model, inputs, ours = _stopping_model("v1.1")
    save_hf_checkpoint(model, tmp_path / "ckpt")
    hf = transformers.T5ForConditionalGeneration.from_pretrained(tmp_path / "ckpt").eval()
    with torch.no_grad():
        theirs = hf.generate(
            input_ids=inputs,
            attention_mask=(inputs > 0).long(),
            do_sample=False,
            num_beams=1,
            max_new_tokens=12,
        )[:, 1:]
    theirs = F.pad(theirs, (0, ours.shape[1] - theirs.shape[1]))
    assert torch.equal(ours, theirs)


def test_decoding_stops_when_every_row_is_done():
    model, inputs, out = _stopping_model("v1.1")
    done = (out == EOS).any(1)
    subset = greedy_decode(model, inputs[done], max_length=30)
    last_first_eos = max(int((row == EOS).nonzero()[0]) for row in out[done])
    assert subset.shape == (int(done.sum()), last_first_eos + 1)
    assert torch.equal(subset, out[done, : last_first_eos + 1])


def test_ensemble_averages_logits_before_argmax():
    a, b = T5Model(tiny_config(**V11)).eval(), T5Model(tiny_config(**V11)).eval()
    inputs = torch.randint(2, 96, (4, 8))
    assert torch.equal(
        ensemble_greedy([a, a], inputs, max_length=6), greedy_decode(a, inputs, max_length=6)
    )
    got = ensemble_greedy([a, b], inputs, max_length=6)
    # reference: full teacher-forced decoding, logits averaged, EOS then padding per row
    with torch.no_grad():
        prefix = torch.zeros(4, 1, dtype=torch.long)
        finished = torch.zeros(4, dtype=torch.bool)
        for _ in range(got.shape[1]):
            mean = (a(inputs, prefix).logits[:, -1] + b(inputs, prefix).logits[:, -1]) / 2
            token = mean.argmax(-1).masked_fill(finished, 0)
            finished |= token == EOS
            prefix = torch.cat([prefix, token[:, None]], 1)
    assert torch.equal(got, prefix[:, 1:])
    singles = [greedy_decode(m, inputs, max_length=6) for m in (a, b)]
    assert any(not torch.equal(got, single) for single in singles)


def test_ensemble_rejects_mismatched_vocabularies():
    with pytest.raises(TaskmixError, match="vocabulary"):
        ensemble_greedy(
            [T5Model(tiny_config()), T5Model(tiny_config(vocab_size=64))],
            torch.ones(1, 3, dtype=torch.long),
        )


def _log_likelihood(model: T5Model, inputs: list[int], target: list[int]) -> float:
    x, y = torch.tensor([inputs]), torch.tensor([target])
    with torch.no_grad():
        return -model(x, F.pad(y, (1, 0))[:, :-1], y).loss_sum.item()


def test_score_options_ranks_by_log_likelihood():
    model = T5Model(tiny_config()).eval()
    inputs = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    options = [[20, EOS], [30, 31, EOS], [40, 41, 42, EOS]]
    result = score_options(model, inputs, options, batch_size=4)  # batch splits the 9 pairs
    for i, x in enumerate(inputs):
        expected = [_log_likelihood(model, x, o) for o in options]
        assert result.scores[i] == pytest.approx(expected, abs=1e-4)
        assert result.best[i] == max(range(3), key=expected.__getitem__)
    per_input = score_options(model, inputs, [options[:2], options, options[1:]])
    assert per_input.scores[0] == pytest.approx(result.scores[0][:2], abs=1e-4)
    assert per_input.scores[2] == pytest.approx(result.scores[2][1:], abs=1e-4)
    with pytest.raises(TaskmixError, match="option lists"):
        score_options(model, inputs, [options])


@pytest.mark.parametrize("architecture", ["decoder_only", "prefix_lm"])
def test_score_options_for_decoder_only_models(architecture):
    model = DecoderOnlyLM(tiny_config(architecture=architecture)).eval()
    inputs, options = [[5, 6, 7]], [[20, EOS], [30, 31, EOS]]
    result = score_options(model, inputs, options)
    for j, option in enumerate(options):
        tokens = torch.tensor([inputs[0] + option])
        causal = (
            (torch.arange(tokens.shape[1]) <= 3).long()[None]
            if architecture == "prefix_lm"
            else None
        )
        weights = (torch.arange(tokens.shape[1]) >= 3).float()[None]
        with torch.no_grad():
            out = model(
                F.pad(tokens, (1, 0))[:, :-1],
                tokens,
                decoder_loss_weights=weights,
                decoder_causal_attention=causal,
            )
        assert result.scores[0][j] == pytest.approx(-out.loss_sum.item(), abs=1e-4)


def test_decoding_ignores_dropout_and_restores_training_mode():
    model = T5Model(tiny_config(dropout_rate=0.5, **V11))
    inputs = torch.randint(2, 96, (3, 6))
    first = greedy_decode(model, inputs, max_length=5, use_cache=False)
    assert model.training
    assert torch.equal(first, greedy_decode(model.eval(), inputs, max_length=5))


def _lm_that_stops_sometimes(architecture: str) -> tuple[DecoderOnlyLM, torch.Tensor]:
    torch.manual_seed(5)
    model = DecoderOnlyLM(tiny_config(architecture=architecture)).eval()
    inputs = torch.randint(2, 96, (6, 9))
    inputs[1, 4:] = 0  # prompts of different lengths
    inputs[4, 1:] = 0
    with torch.no_grad():
        model.shared.weight[0] = 0.0  # no echo of the start/pad token
        model.shared.weight.mul_(0.05)
    return model, inputs


@pytest.mark.parametrize("architecture", ["decoder_only", "prefix_lm"])
def test_lm_decoding_cached_equals_the_models_own_forward(architecture):
    model, inputs = _lm_that_stops_sometimes(architecture)
    cached = greedy_decode(model, inputs, max_length=10, compact=False)
    uncached = greedy_decode(model, inputs, max_length=10, use_cache=False)
    assert cached.shape[0] == 6
    assert torch.equal(cached, uncached)
    # the first generated token is the argmax after [start, inputs...] in the training forward
    for row, prompt in zip(cached, inputs, strict=True):
        real = prompt[prompt > 0]
        sequence = torch.cat([torch.zeros(1, dtype=torch.long), real])[None]
        prefix = torch.ones_like(sequence) if architecture == "prefix_lm" else None
        logits = model(sequence, decoder_causal_attention=prefix).logits
        assert int(row[0]) == int(logits[0, -1].argmax())


def test_prefix_lm_prompt_is_fully_visible_but_decoder_only_is_causal():
    """Changing the last input token changes a prefix LM's view of the first one, so the two
    architectures (same weights) must decode differently for some prompt."""
    outputs = {}
    for architecture in ("decoder_only", "prefix_lm"):
        model, inputs = _lm_that_stops_sometimes(architecture)
        outputs[architecture] = greedy_decode(model, inputs, max_length=6)
    assert not torch.equal(outputs["decoder_only"], outputs["prefix_lm"])


@pytest.mark.parametrize("architecture", ["decoder_only", "prefix_lm"])
def test_lm_compaction_and_ensembles(architecture):
    model, inputs = _lm_that_stops_sometimes(architecture)
    head = model.shared.weight
    with torch.no_grad():
        head[EOS] *= 4.0  # some rows end early, so compaction runs
    plain = greedy_decode(model, inputs, max_length=10, compact=False)
    assert (plain == EOS).any(1).any()
    assert torch.equal(plain, greedy_decode(model, inputs, max_length=10))
    assert torch.equal(plain, ensemble_greedy([model, model], inputs, max_length=10))


def test_greedy_refuses_other_modules():
    with pytest.raises(TaskmixError, match="T5Model and DecoderOnlyLM"):
        greedy_decode(torch.nn.Linear(2, 2), torch.ones(1, 2, dtype=torch.long))


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_compaction_drops_finished_rows_without_changing_outputs(flavour, monkeypatch):
    model, inputs, compacted = _stopping_model(flavour)
    full = greedy_decode(model, inputs, max_length=12, compact=False)
    assert torch.equal(compacted, full)
    # compact as soon as any row finishes, so every gather path runs several times
    monkeypatch.setattr(generate, "COMPACT_FRACTION", 0.0)
    kept: list[int] = []
    original_keep = generate._CachedDecoder.keep

    def spy(self, index):
        kept.append(len(index))
        original_keep(self, index)

    monkeypatch.setattr(generate._CachedDecoder, "keep", spy)
    assert torch.equal(greedy_decode(model, inputs, max_length=12), full)
    assert kept and kept == sorted(kept, reverse=True) and kept[-1] < len(inputs)
    assert torch.equal(greedy_decode(model, inputs, max_length=12, use_cache=False), full)


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_encoder_on_real_tokens_matches_the_padded_encoder(flavour):
    model = T5Model(tiny_config(**(V11 if flavour == "v1.1" else {}))).eval()
    inputs = torch.randint(2, 96, (4, 9))
    inputs[1, 4:] = 0
    inputs[3, 1:] = 0
    with torch.inference_mode():
        fast = model.encode(inputs, skip_padding=True)
        reference = model.encode(inputs)
    real = inputs > 0
    torch.testing.assert_close(fast[real], reference[real], atol=1e-5, rtol=1e-5)
    assert (fast[~real] == 0).all()
    full = torch.randint(2, 96, (2, 5))  # no padding at all
    with torch.inference_mode():
        torch.testing.assert_close(model.encode(full, skip_padding=True), model.encode(full))


def test_prepared_weights_follow_in_place_updates():
    model = T5Model(tiny_config(**V11)).eval()
    inputs = torch.randint(2, 96, (4, 8))
    before = greedy_decode(model, inputs, max_length=6)
    assert torch.equal(greedy_decode(model, inputs, max_length=6), before)  # cached weights
    with torch.no_grad():
        for p in model.decoder.parameters():
            p.mul_(-1.5)
    after = greedy_decode(model, inputs, max_length=6)
    assert torch.equal(after, greedy_decode(model, inputs, max_length=6, use_cache=False))
    assert not torch.equal(after, before)


@pytest.mark.parametrize("flavour", ["v1.0", "v1.1"])
def test_decoding_is_the_same_with_and_without_onednn(flavour, monkeypatch):
    from taskmix.models import onednn, packed

    model, inputs, expected = _stopping_model(flavour)
    monkeypatch.setattr(packed, "_MIN_MACS", 0)  # the packed paths at these tiny sizes too
    head = model.shared if model.lm_head is None else model.lm_head
    try:
        onednn.set_onednn(False)
        for m in model.modules():
            if "_packed" in vars(m):
                m._packed.__init__()  # forget copies made by earlier tests
        plain = greedy_decode(model, inputs, max_length=12)
        assert model.lm_head is None or head._packed.tensor is None
        onednn.set_onednn(True)
        fast = greedy_decode(model, inputs, max_length=12)
        if onednn.onednn_enabled(inputs.float()) and model.lm_head is not None:
            assert head._packed.tensor is not None
    finally:
        onednn.set_onednn(None)
    assert torch.equal(plain, expected)
    assert torch.equal(fast, expected)
