"""Decoder-only language model and prefix LM (SPEC §2 architecture variants).

One stack of ``config.num_layers`` blocks without cross-attention. Features follow seqio's
decoder-only converters: ``decoder_input_tokens, decoder_target_tokens, decoder_loss_weights,
decoder_segment_ids, decoder_positions, decoder_causal_attention``. Where
``decoder_causal_attention`` is 1 (the prefix), positions see each other fully; elsewhere
attention is causal. A ``prefix_lm`` model buckets relative positions bidirectionally (its prefix
looks ahead); a ``decoder_only`` one unidirectionally.
"""

from __future__ import annotations

import torch

from taskmix.models import masks
from taskmix.models.config import T5Config
from taskmix.models.layers import Stack, mask_to_bias
from taskmix.models.t5 import LMHead, ModelOutput, init_weights, weighted_cross_entropy


class DecoderOnlyLM(LMHead):
    def __init__(self, config: T5Config):
        super().__init__()
        if config.architecture not in ("decoder_only", "prefix_lm"):
            raise ValueError(
                f"DecoderOnlyLM needs architecture 'decoder_only' or 'prefix_lm', got {config.architecture!r}"
            )
        self._make_head(config)
        self.decoder = Stack(
            config,
            config.num_layers,
            cross_attention=False,
            bidirectional=config.architecture == "prefix_lm",
        )
        init_weights(self, config)

    def forward(
        self,
        decoder_input_tokens: torch.Tensor,
        decoder_target_tokens: torch.Tensor | None = None,
        decoder_segment_ids: torch.Tensor | None = None,
        decoder_positions: torch.Tensor | None = None,
        decoder_loss_weights: torch.Tensor | None = None,
        decoder_causal_attention: torch.Tensor | None = None,
    ) -> ModelOutput:
        tokens = decoder_input_tokens
        length = tokens.shape[1]
        x = self.shared(tokens)
        pos = masks.bias_positions(decoder_positions, decoder_segment_ids, length, tokens.device)
        valid = None if decoder_target_tokens is None else decoder_target_tokens > 0
        allowed = masks.causal_mask(
            length,
            tokens.device,
            segment_ids=decoder_segment_ids,
            valid=valid,
            causal_attention=decoder_causal_attention,
        )
        bias = self.decoder.position_bias(pos, pos) + mask_to_bias(allowed, x.dtype)
        logits = self.logits(self.decoder(x, bias))
        if decoder_target_tokens is None:
            return ModelOutput(logits=logits)
        loss, loss_sum, num_tokens, token_losses = weighted_cross_entropy(
            logits, decoder_target_tokens, decoder_loss_weights
        )
        return ModelOutput(logits, loss, loss_sum, num_tokens, token_losses)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
