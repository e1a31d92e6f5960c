"""Span-corruption throughput: taskmix's batch-vectorised objective vs a per-example baseline.

The baseline is the approach of transformers' ``run_t5_mlm_flax.py`` (``FlaxDataCollatorForT5MLM``):
one ``random_spans_noise_mask`` per example (shuffle + ``np.unique``), then
``create_sentinel_ids`` / ``filter_input_ids``, written here as plain NumPy. Both run on the same
chunks (raw length from ``random_spans_helper``) and produce inputs/targets without EOS.

    .venv/bin/python bench/objectives.py [--input-length 512] [--examples 8192] [--batch 128]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from taskmix.data.vocabulary import ByteVocabulary
from taskmix.objectives import random_spans_helper, span_corruption


class PerExampleSpanCorruption:
    """The straightforward algorithm: a Python-level mask per example, sentinels per batch."""

    def __init__(self, vocab_size: int, noise_density: float, mean_noise_span_length: float):
        self.vocab_size = vocab_size
        self.noise_density = noise_density
        self.mean_noise_span_length = mean_noise_span_length

    def random_spans_noise_mask(self, length: int, rng: np.random.Generator) -> np.ndarray:
        num_noise = min(max(round(length * self.noise_density), 1), length - 1)
        num_spans = max(round(num_noise / self.mean_noise_span_length), 1)
        num_nonnoise = length - num_noise

        def segmentation(num_items: int, num_segments: int) -> np.ndarray:
            first = np.arange(num_items - 1) < (num_segments - 1)
            rng.shuffle(first)
            segment_id = np.cumsum(np.pad(first, [[1, 0]]))
            return np.unique(segment_id, return_counts=True)[1]

        interleaved = np.stack(
            [segmentation(num_nonnoise, num_spans), segmentation(num_noise, num_spans)], axis=1
        ).reshape(-1)
        starts = np.cumsum(interleaved)[:-1]
        indicator = np.zeros(length, dtype=np.int8)
        indicator[starts] = 1
        return np.cumsum(indicator) % 2 == 1

    def create_sentinel_ids(self, mask: np.ndarray) -> np.ndarray:
        mask = mask.astype(np.int64)
        starts = mask - np.roll(mask, 1, axis=-1) * mask
        starts[:, 0] = mask[:, 0]
        ids = np.where(starts != 0, np.cumsum(starts, axis=-1), starts)
        ids = np.where(ids != 0, self.vocab_size - ids, 0)
        return ids - (mask - starts)

    @staticmethod
    def filter_input_ids(tokens: np.ndarray, sentinel_ids: np.ndarray) -> np.ndarray:
        full = np.where(sentinel_ids != 0, sentinel_ids, tokens)
        return full[full >= 0].reshape(tokens.shape[0], -1)

    def __call__(self, tokens: np.ndarray, rng: np.random.Generator):
        batch, length = tokens.shape
        mask = np.asarray([self.random_spans_noise_mask(length, rng) for _ in range(batch)])
        inputs = self.filter_input_ids(tokens, self.create_sentinel_ids(mask))
        targets = self.filter_input_ids(tokens, self.create_sentinel_ids(~mask))
        return inputs, targets


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input-length", type=int, default=512)
    parser.add_argument("--examples", type=int, default=8192)
    parser.add_argument("--batch", type=int, default=128)
    args = parser.parse_args()

    vocab = ByteVocabulary()
    raw_length, targets_length = random_spans_helper(args.input_length, 0.15, 3.0)
    data_rng = np.random.default_rng(0)
    chunks = data_rng.integers(3, vocab.base_vocab_size, (args.examples, raw_length), np.int32)
    batches = [chunks[i : i + args.batch] for i in range(0, args.examples, args.batch)]
    tokens = args.examples * raw_length

    objective = span_corruption(input_length=args.input_length, batch_size=args.batch)
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for batch in batches:
        inputs, targets = objective.apply(batch, vocab, rng)
        inputs.rows(), targets.rows()  # per-example arrays, as the preprocessor yields them
    ours = tokens / (time.perf_counter() - start)
    assert int(inputs.lengths[0]) + 1 == args.input_length
    assert int(targets.lengths[0]) + 1 == targets_length

    baseline = PerExampleSpanCorruption(vocab.vocab_size, 0.15, 3.0)
    rng = np.random.default_rng(1)
    start = time.perf_counter()
    for batch in batches:
        b_inputs, b_targets = baseline(batch, rng)
        list(b_inputs), list(b_targets)
    theirs = tokens / (time.perf_counter() - start)
    assert b_inputs.shape[1] + 1 == args.input_length

    print(
        f"span corruption, {args.examples} chunks x {raw_length} tokens "
        f"(inputs {args.input_length}, targets {targets_length}, batch {args.batch})"
    )
    print(f"  vectorised (taskmix): {ours / 1e6:8.2f} M tokens/s")
    print(f"  per-example baseline: {theirs / 1e6:8.2f} M tokens/s")
    print(f"  speed-up: {ours / theirs:.1f}x")


if __name__ == "__main__":
    main()
