"""Attention within segments only, for packed encoder-decoder rows.

A packed row of length L holds several examples; dense attention scores all L x L pairs and
masks the cross-segment ones, so most of its work (and, in training, most of the dropout random
numbers on attention weights) is thrown away. Here each example's segment is gathered into a
bucket of examples of similar length, attention runs on (examples, heads, n, n) blocks, and the
results are put back in place: the same outputs at every non-padding position as the dense
path, for a fraction of its cost (the idea of "unpadded" / variable-length attention).

The plan is built from the segment ids alone (no gradients) and applies when every segment is
one contiguous run and each example has both an encoder and a decoder segment, as the packing
converters produce. Padding positions (segment 0) get zeros instead of the dense path's
meaningless values; they never reach a loss or another token.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from taskmix.models.dropout import probability_dropout

ROW_MULTIPLE = 64  # per-token rows are padded to a multiple of this (see ``Side``)


@dataclass
class RowMap:
    """Row ``i`` of the result is row ``index[i]`` of the source, or zeros for rows in ``zero``."""

    index: torch.Tensor
    zero: torch.Tensor

    def take(self, x: torch.Tensor) -> torch.Tensor:
        out = x.index_select(0, self.index)
        return out.index_fill_(0, self.zero, 0.0) if self.zero.numel() else out


class _MoveRows(torch.autograd.Function):
    """Rows moved by ``forward_map``, gradients moved back by ``backward_map``. The autograd
    default (``index_add_`` into a zero tensor per call) costs a full-size fill per bucket and
    tensor; here each direction is one gather. Exact because every row that ``backward_map``
    zeroes gets no gradient: padding slots are masked keys or discarded queries."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, forward_map: RowMap, backward_map: RowMap) -> torch.Tensor:
        ctx.backward_map = backward_map
        return forward_map.take(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.backward_map.take(grad.contiguous()), None, None


@dataclass
class Side:
    """One sequence (encoder or decoder) of a packed batch: its real tokens, and the same tokens
    laid out as buckets of segments.

    ``tokens`` are the flattened (B * L) positions of the rows the model's per-token layers run
    on: the ``num_real`` real (non-padding) tokens in order, then as many padding positions as
    round the count up to a multiple of ``ROW_MULTIPLE`` (where the batch has them). Those extra
    rows are computed and discarded (no attention reads them, no loss sees them): they keep
    the matrix shapes to a few values across steps, so oneDNN reuses its compiled kernels
    instead of caching new ones for every token count, which made a T5-small run's memory grow
    by ~60 MB per step (and the growing heap cost page faults). Bucket ``i`` holds
    ``shapes[i] = (N, n)``: N segments, each padded to n slots; the slots of all buckets, in
    order, are the rows of one (slots, inner) tensor. ``valid`` (per bucket, (N, n)) marks slots
    holding a real token."""

    tokens: torch.Tensor
    num_real: int
    shapes: list[tuple[int, int]]
    valid: list[torch.Tensor]
    to_slots: RowMap  # token rows -> slot rows (padding slots zero)
    to_tokens: RowMap  # slot rows -> token rows

    @classmethod
    def build(
        cls,
        segment_ids: np.ndarray,
        starts: np.ndarray,
        lengths: np.ndarray,
        groups: list[np.ndarray],
        caps: list[int],
        device: torch.device,
    ) -> Side:
        """``starts`` / ``lengths``: flattened start and length of each segment; ``groups[i]``:
        the segments of bucket i, padded to ``caps[i]``."""
        flat_ids = segment_ids.reshape(-1)
        positions = np.nonzero(flat_ids > 0)[0]
        num_real = len(positions)
        rows_wanted = min(-(-num_real // ROW_MULTIPLE) * ROW_MULTIPLE, flat_ids.size)
        if rows_wanted > num_real:
            spare = np.nonzero(flat_ids == 0)[0][: rows_wanted - num_real]
            positions = np.concatenate([positions, spare])
        token_row = np.full(segment_ids.size, -1, dtype=np.int64)
        token_row[positions] = np.arange(len(positions))
        slot_rows, valid, shapes = [], [], []
        for members, cap in zip(groups, caps, strict=True):
            slot = np.arange(cap)[None, :]
            ok = slot < lengths[members, None]
            flat = np.where(ok, starts[members, None] + slot, 0)
            slot_rows.append(np.where(ok, token_row[flat], -1).reshape(-1))
            valid.append(torch.from_numpy(ok).to(device))
            shapes.append((len(members), cap))
        rows = np.concatenate(slot_rows)
        slot_of_token = np.full(len(positions), -1, dtype=np.int64)  # extra rows: no slot
        slot_of_token[rows[rows >= 0]] = np.nonzero(rows >= 0)[0]
        tokens = torch.from_numpy(positions).to(device)
        to_slots, to_tokens = _row_map(rows, device), _row_map(slot_of_token, device)
        return cls(tokens, num_real, shapes, valid, to_slots, to_tokens)

    @property
    def real_tokens(self) -> torch.Tensor:
        """Positions of the real tokens (the first ``num_real`` rows)."""
        return self.tokens[: self.num_real]

    def gather(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Token rows (T, inner) -> per bucket (N, n, inner)."""
        flat = _MoveRows.apply(x, self.to_slots, self.to_tokens)
        # one split, not slices: a slice's backward fills a full-size zero tensor per bucket
        pieces = flat.split([n * cap for n, cap in self.shapes])
        return [p.view(n, cap, -1) for p, (n, cap) in zip(pieces, self.shapes, strict=True)]

    def scatter(self, buckets: list[torch.Tensor]) -> torch.Tensor:
        """Per bucket (N, n, inner) -> token rows (T, inner)."""
        inner = buckets[0].shape[-1]
        flat = torch.cat([b.reshape(-1, inner) for b in buckets])
        return _MoveRows.apply(flat, self.to_tokens, self.to_slots)


def _row_map(source: np.ndarray, device: torch.device) -> RowMap:
    """-1 in ``source`` marks rows to zero."""
    index = torch.from_numpy(np.maximum(source, 0)).to(device)
    zero = torch.from_numpy(np.nonzero(source < 0)[0]).to(device)
    return RowMap(index, zero)


@dataclass
class SegmentedAttention:
    """What ``Attention`` takes instead of a dense bias: query and key sides, and per bucket an
    additive bias broadcastable to (N, H, Lq, Lk)."""

    queries: Side
    keys: Side
    biases: list[torch.Tensor]

    def attend(
        self, q: torch.Tensor, kv: torch.Tensor, n_heads: int, dropout_p: float
    ) -> torch.Tensor:
        """q (Tq, inner) and kv (Tk, 2 x inner: keys, then values) token rows -> (Tq, inner)."""
        buckets = zip(self.queries.gather(q), self.keys.gather(kv), strict=True)
        return self._attend([(qb, *kvb.chunk(2, -1)) for qb, kvb in buckets], n_heads, dropout_p)

    def attend_self(self, qkv: torch.Tensor, n_heads: int, dropout_p: float) -> torch.Tensor:
        """qkv (T, 3 x inner: queries, keys, values) token rows of one side -> (T, inner); the
        three are gathered into buckets together."""
        if self.queries is not self.keys:
            raise ValueError("attend_self needs a self-attention plan (queries and keys alike)")
        buckets = [b.chunk(3, -1) for b in self.queries.gather(qkv)]
        return self._attend(buckets, n_heads, dropout_p)

    def _attend(
        self, buckets: list[tuple[torch.Tensor, ...]], n_heads: int, dropout_p: float
    ) -> torch.Tensor:
        outputs = []
        for (qb, kb, vb), bias in zip(buckets, self.biases, strict=True):
            qb, kb, vb = (_heads(t, n_heads) for t in (qb, kb, vb))
            bias = bias.to(qb.dtype)
            if dropout_p > 0.0 and qb.device.type == "cpu":  # SDPA would use slow bernoulli_
                weights = torch.softmax(qb @ kb.transpose(-1, -2) + bias, dim=-1)
                out = probability_dropout(weights, dropout_p, training=True) @ vb
            else:
                out = F.scaled_dot_product_attention(
                    qb, kb, vb, attn_mask=bias, dropout_p=dropout_p, scale=1.0
                )
            outputs.append(out.transpose(1, 2).flatten(2))
        return self.queries.scatter(outputs)


def _heads(x: torch.Tensor, n_heads: int) -> torch.Tensor:
    n, length, _ = x.shape
    return x.view(n, length, n_heads, -1).transpose(1, 2)


def bucket_length(n: int, limit: int) -> int:
    """Padded length of a bucket holding segments of length ``n``: multiples of 16 up to 64,
    then steps of x1.5 (96, 144, 216, ...), never above the row length ``limit``."""
    if n <= 64:
        return min(-(-n // 16) * 16, limit)
    length = 64
    while length < n:
        length = length * 3 // 2
    return min(length, limit)


def _segments(segment_ids: np.ndarray) -> tuple[np.ndarray, ...] | None:
    """(row, start, length, id) of each segment of a (B, L) id array, or None if some id
    occurs in more than one run of its row (segments must be contiguous)."""
    batch = segment_ids.shape[0]
    zeros = np.zeros((batch, 1), segment_ids.dtype)
    before = np.concatenate([zeros, segment_ids[:, :-1]], axis=1)
    after = np.concatenate([segment_ids[:, 1:], zeros], axis=1)
    real = segment_ids > 0
    row, start = np.nonzero(real & (segment_ids != before))
    _, last = np.nonzero(real & (segment_ids != after))  # same row-major order as the starts
    ids = segment_ids[row, start].astype(np.int64)
    keys = row * (int(ids.max(initial=0)) + 1) + ids
    if len(np.unique(keys)) != len(keys):
        return None
    return row, start, last + 1 - start, ids


@dataclass
class SegmentLayout:
    """Bucketed plan for one packed encoder-decoder batch: bucket i of the encoder side and
    bucket i of the decoder side hold the same examples in the same order."""

    encoder: Side
    decoder: Side

    @classmethod
    def build(
        cls,
        encoder_segment_ids: torch.Tensor,
        decoder_segment_ids: torch.Tensor,
        max_fraction: float = 0.7,
    ) -> SegmentLayout | None:
        """The plan, or None when the dense path is needed (non-contiguous or unpaired segments)
        or cheaper (bucketed attention pairs above ``max_fraction`` of the dense ones)."""
        enc_ids = encoder_segment_ids.detach().cpu().numpy()
        dec_ids = decoder_segment_ids.detach().cpu().numpy()
        enc, dec = _segments(enc_ids), _segments(dec_ids)
        if enc is None or dec is None or len(enc[0]) == 0:
            return None
        width = max(int(enc[3].max()), int(dec[3].max())) + 1
        enc_key, dec_key = enc[0] * width + enc[3], dec[0] * width + dec[3]
        enc_order, dec_order = np.argsort(enc_key), np.argsort(dec_key)
        if not np.array_equal(enc_key[enc_order], dec_key[dec_order]):
            return None  # an example with only an encoder or only a decoder segment
        (batch, enc_len), dec_len = enc_ids.shape, dec_ids.shape[1]
        enc_row, enc_start, enc_n, _ = (a[enc_order] for a in enc)
        dec_row, dec_start, dec_n, _ = (a[dec_order] for a in dec)
        caps = np.array([bucket_length(int(n), enc_len) for n in enc_n])
        enc_caps = np.unique(caps).tolist()
        groups = [np.nonzero(caps == cap)[0] for cap in enc_caps]
        dec_caps = [int(dec_n[members].max()) for members in groups]
        pairs = sum(
            len(m) * (e * e + d * d + d * e)
            for m, e, d in zip(groups, enc_caps, dec_caps, strict=True)
        )
        if pairs > max_fraction * batch * (enc_len**2 + dec_len**2 + dec_len * enc_len):
            return None
        device = encoder_segment_ids.device
        return cls(
            Side.build(enc_ids, enc_row * enc_len + enc_start, enc_n, groups, enc_caps, device),
            Side.build(dec_ids, dec_row * dec_len + dec_start, dec_n, groups, dec_caps, device),
        )

    def encoder_self(self, position_bias: torch.Tensor) -> SegmentedAttention:
        """Bidirectional attention within encoder segments; ``position_bias`` (1, H, L, L)."""
        biases = [
            position_bias[:, :, :cap, :cap] + _key_mask(valid)
            for (_, cap), valid in zip(self.encoder.shapes, self.encoder.valid, strict=True)
        ]
        return SegmentedAttention(self.encoder, self.encoder, biases)

    def decoder_self(self, position_bias: torch.Tensor) -> SegmentedAttention:
        """Causal attention within decoder segments; padding slots follow the real ones, so the
        causal mask alone keeps real queries off them."""
        biases = []
        for _, cap in self.decoder.shapes:
            future = torch.ones(cap, cap, dtype=torch.bool, device=position_bias.device).triu(1)
            mask = torch.zeros(cap, cap, device=position_bias.device).masked_fill(
                future, torch.finfo(torch.float32).min
            )
            biases.append(position_bias[:, :, :cap, :cap] + mask)
        return SegmentedAttention(self.decoder, self.decoder, biases)

    def cross(self) -> SegmentedAttention:
        """Decoder segment k attends to encoder segment k of its row (no position bias)."""
        return SegmentedAttention(
            self.decoder, self.encoder, [_key_mask(v) for v in self.encoder.valid]
        )


def _key_mask(valid: torch.Tensor) -> torch.Tensor:
    zero = torch.zeros((), dtype=torch.float32, device=valid.device)
    return torch.where(valid, zero, torch.finfo(torch.float32).min)[:, None, None, :]
