"""Attention masks for seqio-style batches, packed or not (the t5x ``make_*_mask`` semantics).

Padding is token/segment id 0. With segment ids, a token attends only to tokens of its own
segment; without them, validity comes from the tokens themselves."""

from __future__ import annotations

import torch


def positions_or_default(positions: torch.Tensor | None, length: int, device) -> torch.Tensor:
    """Per-segment positions (B, L), or 0..L-1 as a (1, L) row shared by the batch."""
    if positions is not None:
        return positions.long()
    return torch.arange(length, device=device)[None, :]


def bias_positions(
    positions: torch.Tensor | None, segment_ids: torch.Tensor | None, length: int, device
) -> torch.Tensor:
    """Positions for the relative position bias: 0..L-1 as one (1, L) row whenever that gives the
    same bias at every pair the mask allows, else ``positions`` (B, L).

    In packed rows (seqio / taskmix converters) each segment is one contiguous run whose
    positions count up by one, so ``key_pos - query_pos`` equals the index difference for every
    same-segment pair; cross-segment pairs are masked anyway. The bias (and its gradient, an
    embedding backward over L*L instead of B*L*L indices) is then (1, H, L, L) for the batch.
    """
    default = torch.arange(length, device=device)[None, :]
    if positions is None:
        return default
    if segment_ids is None or positions.shape[1] < 2:
        return positions.long()
    seg, pos = segment_ids, positions.long()
    new_run = seg[:, 1:] != seg[:, :-1]
    # contiguous segments: a run of a non-zero id starts only with an id never seen before in the row
    seen = torch.cummax(seg, dim=1).values[:, :-1]
    contiguous = ~(new_run & (seg[:, 1:] > 0) & (seg[:, 1:] <= seen))
    counts_up = new_run | (seg[:, 1:] == 0) | (pos[:, 1:] - pos[:, :-1] == 1)
    return default if bool((contiguous & counts_up).all()) else pos


def fully_visible_mask(tokens: torch.Tensor, segment_ids: torch.Tensor | None) -> torch.Tensor:
    """Encoder self-attention: bool (B, 1, L, L) or (B, 1, 1, L)."""
    if segment_ids is None:
        return (tokens > 0)[:, None, None, :]
    return _same_segment(segment_ids, segment_ids)


def cross_mask(
    encoder_tokens: torch.Tensor,
    encoder_segment_ids: torch.Tensor | None,
    decoder_segment_ids: torch.Tensor | None,
) -> torch.Tensor:
    """Decoder -> encoder attention: packed decoder segment k sees only encoder segment k."""
    if encoder_segment_ids is None or decoder_segment_ids is None:
        return (encoder_tokens > 0)[:, None, None, :]
    return _same_segment(decoder_segment_ids, encoder_segment_ids)


def causal_mask(
    length: int,
    device,
    *,
    segment_ids: torch.Tensor | None = None,
    valid: torch.Tensor | None = None,
    causal_attention: torch.Tensor | None = None,
) -> torch.Tensor:
    """Decoder self-attention, bool (B or 1, 1, L, L): key index <= query index, within the
    same segment, keys valid. ``causal_attention`` (prefix LM, seqio's
    ``decoder_causal_attention``) additionally makes positions where both query and key are 1
    fully visible to each other."""
    idx = torch.arange(length, device=device)
    allowed = (idx[None, :] <= idx[:, None])[None, None]
    if causal_attention is not None:
        prefix = causal_attention > 0
        allowed = allowed | (prefix[:, None, :, None] & prefix[:, None, None, :])
    if segment_ids is not None:
        allowed = allowed & _same_segment(segment_ids, segment_ids)
    elif valid is not None:
        allowed = allowed & valid[:, None, None, :]
    return allowed


def _same_segment(query_segments: torch.Tensor, key_segments: torch.Tensor) -> torch.Tensor:
    same = query_segments[:, :, None] == key_segments[:, None, :]
    return (same & (key_segments[:, None, :] > 0))[:, None]
