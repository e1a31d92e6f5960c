"""The T5 encoder-decoder (SPEC §2), optionally with encoder and decoder sharing parameters.

Forward takes seqio-named batch features (torch tensors of shape (B, L)) and handles packed
rows: attention never crosses segments and the relative position bias uses per-segment positions,
so a packed row scores exactly as its examples would one by one."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from taskmix.models import masks
from taskmix.models.config import T5Config
from taskmix.models.cpu_linear import Linear, linear
from taskmix.models.layers import (
    Attention,
    DenseActDense,
    DenseGatedActDense,
    Stack,
    T5LayerNorm,
    mask_to_bias,
)
from taskmix.models.packed import PackedWeight, packed_linear
from taskmix.models.padding import UnpaddedAttention
from taskmix.models.segments import SegmentLayout


@dataclass
class ModelOutput:
    """``loss`` = ``loss_sum / num_tokens`` (token-weighted mean cross-entropy). A trainer that
    accumulates gradients sums ``loss_sum`` and ``num_tokens`` over micro-batches instead.
    ``token_losses`` (no gradient, the targets' shape) is each target token's weighted
    cross-entropy, 0 on padding: the trainer sums it per task (``training.task_losses``)."""

    logits: torch.Tensor
    loss: torch.Tensor | None = None
    loss_sum: torch.Tensor | None = None
    num_tokens: torch.Tensor | None = None
    token_losses: torch.Tensor | None = None


def weighted_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, loss_sum, num_tokens, token_losses); weights default to 1 on non-padding targets
    (id > 0); ``token_losses`` is detached, of the targets' shape."""
    if weights is None:
        weights = targets > 0
    weights = weights.to(torch.float32)
    token_ce = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1).long(), reduction="none"
    ).view_as(weights)
    weighted = token_ce * weights
    loss_sum = weighted.sum()
    num_tokens = weights.sum()
    return loss_sum / num_tokens.clamp(min=1e-9), loss_sum, num_tokens, weighted.detach()


def init_weights(module: nn.Module, config: T5Config) -> None:
    """T5 / HF initialisation (Mesh-TF scales): the attention's missing 1/sqrt(d_kv) lives in q's init."""
    d, h, k = config.d_model, config.num_heads, config.d_kv
    for m in module.modules():
        if isinstance(m, T5LayerNorm):
            nn.init.ones_(m.weight)
        elif isinstance(m, Attention):
            nn.init.normal_(m.q.weight, std=(d * k) ** -0.5)
            nn.init.normal_(m.k.weight, std=d**-0.5)
            nn.init.normal_(m.v.weight, std=d**-0.5)
            nn.init.normal_(m.o.weight, std=(h * k) ** -0.5)
            if hasattr(m, "relative_attention_bias"):
                nn.init.normal_(m.relative_attention_bias.weight, std=d**-0.5)
        elif isinstance(m, DenseActDense):
            nn.init.normal_(m.wi.weight, std=d**-0.5)
            nn.init.normal_(m.wo.weight, std=config.d_ff**-0.5)
        elif isinstance(m, DenseGatedActDense):
            nn.init.normal_(m.wi_0.weight, std=d**-0.5)
            nn.init.normal_(m.wi_1.weight, std=d**-0.5)
            nn.init.normal_(m.wo.weight, std=config.d_ff**-0.5)
    nn.init.normal_(module.shared.weight, std=1.0)
    if module.lm_head is not None:
        # Unit-variance logits at the start (HF uses std 1.0, whose initial loss is ~sqrt(d_model)
        # times too large); a tied head gets the same effect from its d_model**-0.5 scaling.
        nn.init.normal_(module.lm_head.weight, std=d**-0.5)


class LMHead(nn.Module):
    """Shared by the model families: tied (scale by d_model**-0.5, project with the embedding,
    T5.1.0) or an untied ``lm_head`` (T5.1.1)."""

    config: T5Config
    shared: nn.Embedding
    lm_head: nn.Linear | None

    def set_dropout(self, rate: float) -> None:
        """Change every dropout rate (fine-tuning a checkpoint pre-trained without dropout)."""
        self.config.dropout_rate = rate
        for m in self.modules():
            if isinstance(m, nn.Dropout):
                m.p = rate
            elif isinstance(m, Attention):
                m.dropout = rate

    def logits(self, hidden: torch.Tensor) -> torch.Tensor:
        if self.lm_head is None:
            scaled = hidden * self.config.d_model**-0.5
            out = packed_linear(scaled, (self.shared.weight,), self._packed_head)
            return linear(scaled, self.shared.weight) if out is None else out
        return self.lm_head(hidden)

    def _make_head(self, config: T5Config) -> None:
        self.config = config
        self.shared = nn.Embedding(config.vocab_size, config.d_model)
        self.lm_head = (
            None
            if config.tie_word_embeddings
            else Linear(config.d_model, config.vocab_size, bias=False)
        )
        self._packed_head = PackedWeight()  # the tied head's packed copy, made while decoding


class T5Model(LMHead):
    """Encoder-decoder T5. ``config.shared_encoder_decoder`` makes the decoder reuse the
    encoder's self-attention, feed-forward, layer norms and position-bias table (only
    cross-attention is decoder-only), about half the parameters."""

    def __init__(self, config: T5Config):
        super().__init__()
        if config.architecture != "encoder_decoder":
            raise ValueError(
                f"T5Model needs architecture 'encoder_decoder', got {config.architecture!r}; use build_model"
            )
        self._make_head(config)
        self.encoder = Stack(config, config.num_layers, cross_attention=False, bidirectional=True)
        self.decoder = Stack(
            config,
            config.num_decoder_layers,
            cross_attention=True,
            bidirectional=False,
            share_with=self.encoder if config.shared_encoder_decoder else None,
        )
        init_weights(self, config)
        # packed rows attend within segments only (same outputs, less work); False: dense masks
        self.segmented_attention = True

    # --- pieces used by forward, generation and scoring -------------------------------------
    def encode(
        self,
        encoder_input_tokens: torch.Tensor,
        encoder_segment_ids: torch.Tensor | None = None,
        encoder_positions: torch.Tensor | None = None,
        *,
        skip_padding: bool = False,
    ) -> torch.Tensor:
        """Encoder hidden states (B, L, d_model). ``skip_padding`` (unpacked inputs only): the
        per-token layers run on the real tokens only (see ``padding``), and padding positions
        of the result are zero instead of the padding tokens' states; real positions are the
        same (cross-attention masks padding anyway)."""
        tokens = encoder_input_tokens
        if skip_padding and encoder_segment_ids is None and encoder_positions is None:
            return self._encode_real_tokens(tokens)
        x = self.shared(tokens)
        pos = masks.bias_positions(
            encoder_positions, encoder_segment_ids, tokens.shape[1], tokens.device
        )
        bias = self.encoder.position_bias(pos, pos) + mask_to_bias(
            masks.fully_visible_mask(tokens, encoder_segment_ids), x.dtype
        )
        return self.encoder(x, bias)

    def _encode_real_tokens(self, tokens: torch.Tensor) -> torch.Tensor:
        batch, length = tokens.shape
        positions = torch.arange(length, device=tokens.device)[None, :]
        bias = self.encoder.position_bias(positions, positions) + mask_to_bias(
            masks.fully_visible_mask(tokens, None), self.shared.weight.dtype
        )
        plan = UnpaddedAttention.build(tokens, bias)
        x = self.shared(tokens.reshape(-1).index_select(0, plan.index))  # (N, D)
        return plan.padded(self.encoder(x, plan)).view(batch, length, -1)

    def decode(
        self,
        encoder_hidden: torch.Tensor,
        encoder_input_tokens: torch.Tensor,
        decoder_input_tokens: torch.Tensor,
        decoder_target_tokens: torch.Tensor | None = None,
        encoder_segment_ids: torch.Tensor | None = None,
        decoder_segment_ids: torch.Tensor | None = None,
        decoder_positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Teacher-forced decoder logits (B, L, vocab)."""
        tokens = decoder_input_tokens
        length = tokens.shape[1]
        x = self.shared(tokens)
        pos = masks.bias_positions(decoder_positions, decoder_segment_ids, length, tokens.device)
        valid = None if decoder_target_tokens is None else decoder_target_tokens > 0
        allowed = masks.causal_mask(
            length, tokens.device, segment_ids=decoder_segment_ids, valid=valid
        )
        self_bias = self.decoder.position_bias(pos, pos) + mask_to_bias(allowed, x.dtype)
        cross_bias = mask_to_bias(
            masks.cross_mask(encoder_input_tokens, encoder_segment_ids, decoder_segment_ids),
            x.dtype,
        )
        hidden = self.decoder(x, self_bias, encoder_hidden, cross_bias)
        return self.logits(hidden)

    def forward(
        self,
        encoder_input_tokens: torch.Tensor,
        decoder_input_tokens: torch.Tensor,
        decoder_target_tokens: torch.Tensor | None = None,
        encoder_segment_ids: torch.Tensor | None = None,
        decoder_segment_ids: torch.Tensor | None = None,
        encoder_positions: torch.Tensor | None = None,
        decoder_positions: torch.Tensor | None = None,
        decoder_loss_weights: torch.Tensor | None = None,
    ) -> ModelOutput:
        layout = self.segment_layout(
            encoder_segment_ids, decoder_segment_ids, encoder_positions, decoder_positions
        )
        if layout is not None and (
            decoder_loss_weights is None
            or not bool(decoder_loss_weights[decoder_segment_ids == 0].any())
        ):
            return self._forward_packed(
                layout,
                encoder_input_tokens,
                decoder_input_tokens,
                decoder_target_tokens,
                decoder_loss_weights,
            )
        encoder_hidden = self.encode(encoder_input_tokens, encoder_segment_ids, encoder_positions)
        logits = self.decode(
            encoder_hidden,
            encoder_input_tokens,
            decoder_input_tokens,
            decoder_target_tokens,
            encoder_segment_ids,
            decoder_segment_ids,
            decoder_positions,
        )
        if decoder_target_tokens is None:
            return ModelOutput(logits=logits)
        loss, loss_sum, num_tokens, token_losses = weighted_cross_entropy(
            logits, decoder_target_tokens, decoder_loss_weights
        )
        return ModelOutput(logits, loss, loss_sum, num_tokens, token_losses)

    def _forward_packed(
        self,
        layout: SegmentLayout,
        encoder_input_tokens: torch.Tensor,
        decoder_input_tokens: torch.Tensor,
        decoder_target_tokens: torch.Tensor | None,
        decoder_loss_weights: torch.Tensor | None,
    ) -> ModelOutput:
        """``forward`` for packed rows: every per-token layer runs on the real tokens only
        (``layout.*.tokens``, often a third of the decoder's slots are padding; rounded up to a
        few extra rows, see ``segments.Side``) and attention
        within segments; logits at padding positions are zero."""
        enc, dec = layout.encoder, layout.decoder
        enc_pos = torch.arange(encoder_input_tokens.shape[1], device=enc.tokens.device)[None]
        dec_pos = torch.arange(decoder_input_tokens.shape[1], device=dec.tokens.device)[None]
        x = self.shared(encoder_input_tokens.reshape(-1)[enc.tokens])
        encoder_hidden = self.encoder(
            x, layout.encoder_self(self.encoder.position_bias(enc_pos, enc_pos))
        )
        y = self.shared(decoder_input_tokens.reshape(-1)[dec.tokens])
        self_attention = layout.decoder_self(self.decoder.position_bias(dec_pos, dec_pos))
        hidden = self.decoder(y, self_attention, encoder_hidden, layout.cross())
        token_logits = self.logits(hidden)[: dec.num_real]  # (real decoder tokens, vocab)
        real = dec.real_tokens
        batch, length = decoder_input_tokens.shape
        logits = token_logits.new_zeros(batch * length, token_logits.shape[-1])
        logits = logits.index_copy(0, real, token_logits).view(batch, length, -1)
        if decoder_target_tokens is None:
            return ModelOutput(logits=logits)
        weights = None
        if decoder_loss_weights is not None:
            weights = decoder_loss_weights.reshape(-1)[real]
        loss, loss_sum, num_tokens, real_losses = weighted_cross_entropy(
            token_logits, decoder_target_tokens.reshape(-1)[real], weights
        )
        token_losses = real_losses.new_zeros(batch * length).index_copy(0, real, real_losses)
        return ModelOutput(logits, loss, loss_sum, num_tokens, token_losses.view(batch, length))

    def segment_layout(
        self,
        encoder_segment_ids: torch.Tensor | None,
        decoder_segment_ids: torch.Tensor | None,
        encoder_positions: torch.Tensor | None,
        decoder_positions: torch.Tensor | None,
    ) -> SegmentLayout | None:
        """The within-segment attention plan for packed rows, or None for the dense path (no
        segments, ``segmented_attention`` off, positions that do not count up per segment, or
        segments too full of one example for bucketing to save work)."""
        if (
            not self.segmented_attention
            or encoder_segment_ids is None
            or decoder_segment_ids is None
        ):
            return None
        for positions, segments in (
            (encoder_positions, encoder_segment_ids),
            (decoder_positions, decoder_segment_ids),
        ):
            if (
                masks.bias_positions(positions, segments, segments.shape[1], segments.device).shape[
                    0
                ]
                > 1
            ):
                return None
        return SegmentLayout.build(encoder_segment_ids, decoder_segment_ids)

    def num_parameters(self) -> int:
        """Unique parameters (shared ones counted once)."""
        return sum(p.numel() for p in self.parameters())
