"""Incremental greedy-decoding state for decoder-only and prefix LMs (``DecoderOnlyLM``).

The prompt is what the LM feature converters put before the targets: the decoder start token,
then the input tokens. A prefix LM sees its whole prompt fully visibly (seqio's
``decoder_causal_attention`` covers the inputs and the first target position); a decoder-only
LM reads it causally. Generated tokens are causal in both.

Prompts of different lengths are right-aligned (left padding, masked as keys), so every row's
next token sits at the same index and one (1, H, T, T) position-bias table serves the batch:
relative positions between real tokens are unchanged by the shift.

Both states below have ``step(current, t)`` and ``keep(index)`` like the encoder-decoder ones in
``generate.py``; step 0's logits come from the prompt itself (``current`` is ignored then). The
cached one passes the same ``KVCache`` through the model's own forwards as the encoder-decoder.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from taskmix.models.decoder_only import DecoderOnlyLM
from taskmix.models.layers import mask_to_bias


def _prompts(model: DecoderOnlyLM, tokens: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded inputs (B, L) -> right-aligned ``[start, inputs...]`` (B, P) and the mask of
    real positions."""
    lengths = (tokens > 0).sum(1) + 1  # + the start token
    width = int(lengths.max())
    index = torch.arange(width, device=tokens.device)[None, :]
    valid = index >= width - lengths[:, None]
    prompt = torch.zeros(tokens.shape[0], width, dtype=torch.long, device=tokens.device)
    prompt[valid] = F.pad(tokens, (1, 0), value=model.config.decoder_start_token_id)[
        F.pad(tokens > 0, (1, 0), value=True)
    ]
    return prompt, valid


class CachedLMDecoder:
    """Runs ``model.decoder`` with a key/value cache (``kv_cache``) over prompt + generated
    tokens: the prompt in one call, then one token per step, through the model's own modules."""

    def __init__(self, model: DecoderOnlyLM, tokens: torch.Tensor, max_length: int):
        self.model = model
        prompt, valid = _prompts(model, tokens)
        width = prompt.shape[1]
        total = width + max_length
        positions = torch.arange(total, device=tokens.device)[None, :]
        self.bias = model.decoder.position_bias(positions, positions)  # (1, H, total, total)
        self.key_ok = F.pad(valid, (0, max_length), value=True)[:, None, None, :]  # (B,1,1,total)
        self.width = width
        self.cache = model.decoder.new_cache(total)
        x = model.shared(prompt)
        idx = torch.arange(width, device=tokens.device)
        allowed = self.key_ok[..., :width]
        if model.config.architecture != "prefix_lm":  # the prompt is read causally
            allowed = allowed & (idx[None, :] <= idx[:, None])[None, None]
        # padding queries see themselves, so that no row is fully masked (no NaN in any dtype)
        allowed = allowed | (idx[None, :] == idx[:, None])[None, None]
        prefill_bias = self.bias[:, :, :width, :width] + mask_to_bias(allowed, x.dtype)
        hidden = model.decoder(x, prefill_bias, cache=self.cache)
        self.first_logits = model.logits(hidden[:, -1])

    def step(self, current: torch.Tensor, t: int) -> torch.Tensor:
        if t == 0:
            return self.first_logits
        index = self.width + t - 1  # cache index of ``current``, the token generated at step t-1
        bias = self.bias[:, :, index : index + 1, : index + 1] + mask_to_bias(
            self.key_ok[..., : index + 1], self.bias.dtype
        )
        x = self.model.shared(current)[:, None]
        return self.model.logits(self.model.decoder(x, bias, cache=self.cache)[:, 0])

    def keep(self, index: torch.Tensor) -> None:
        self.cache.keep(index)
        self.key_ok = self.key_ok.index_select(0, index)


class UncachedLMDecoder:
    """Reference path: the model's own forward (the training path) over the whole sequence,
    right-padded exactly as the LM feature converters lay it out, every step."""

    def __init__(self, model: DecoderOnlyLM, tokens: torch.Tensor, max_length: int):
        self.model = model
        self.input_lengths = (tokens > 0).sum(1)
        batch, width = tokens.shape
        start = model.config.decoder_start_token_id
        self.sequence = tokens.new_zeros(batch, 1 + width + max_length)
        self.sequence[:, 0] = start
        self.sequence[:, 1 : 1 + width] = tokens

    def step(self, current: torch.Tensor, t: int) -> torch.Tensor:
        rows = torch.arange(len(self.sequence), device=current.device)
        last = self.input_lengths + t  # index of the newest token in [start, inputs, generated]
        if t > 0:
            self.sequence[rows, last] = current
        length = int(last.max()) + 1
        decoder_inputs = self.sequence[:, :length]
        prefix = None
        if self.model.config.architecture == "prefix_lm":
            positions = torch.arange(length, device=current.device)[None, :]
            prefix = (positions <= self.input_lengths[:, None]).long()
        logits = self.model(decoder_inputs, decoder_causal_attention=prefix).logits
        return logits[rows, last]

    def keep(self, index: torch.Tensor) -> None:
        self.sequence = self.sequence[index]
        self.input_lengths = self.input_lengths[index]
