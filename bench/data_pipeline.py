#!/usr/bin/env python3
"""Data-pipeline benchmark: examples/s and the share of non-pad tokens, packing vs padding.

    python bench/data_pipeline.py                      # a synthetic, skewed stream of examples
    python bench/data_pipeline.py --mixture default    # source -> preprocess -> tokenize -> pack

It reads N examples from the stream (timed: source, preprocessors and tokenizer), converts them
into batches with a packing feature converter (timed), and compares the share of real
(non-pad) token slots of three layouts at the same length limits:

* packed rows (``pack=True``: the converter's first fit over a window of open rows);
* packed per batch (``taskmix.training.batches.BatchStream``, what the training loop uses);
* each batch padded to its longest example (HF's ``DataCollatorForSeq2Seq``);
* each example padded to the full length (``pack=False``).

Target: non-pad share >= 0.9 with packing at input length 256, on the input side (encoder for
encoder-decoder; the single sequence for decoder-only). The decoder side is reported too.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator

import numpy as np

from taskmix.data.feature_converters import (
    Batch,
    DecoderOnlyFeatureConverter,
    EncDecFeatureConverter,
    FeatureConverter,
    PrefixLMFeatureConverter,
)

EOS = 1


def synthetic_stream(seed: int, vocab_size: int = 32_000) -> Iterator[dict]:
    """Endless tokenized examples with skewed (log-normal) lengths, from four kinds of task.

    Lengths in tokens (median, long right tail): classification (inputs ~33, 1-3 target
    tokens), question answering (inputs ~90, targets ~8), translation (inputs ~20, targets of
    similar length) and long documents (inputs ~150, some over 256; targets ~30). The mix is
    chosen to look like a supervised T5 mixture, not to flatter any packing strategy.
    """
    rng = np.random.default_rng(seed)

    def tokens(n: float) -> np.ndarray:  # int32 ids ending in EOS, as ``tokenize`` makes them
        ids = rng.integers(3, vocab_size, max(1, int(n)) + 1, dtype=np.int32)
        ids[-1] = EOS
        return ids

    while True:
        kind = rng.choice(4, p=[0.5, 0.2, 0.2, 0.1])
        if kind == 0:
            n_in, n_tg = rng.lognormal(3.5, 0.6), rng.integers(1, 4)
        elif kind == 1:
            n_in, n_tg = rng.lognormal(4.5, 0.5), rng.lognormal(2.0, 0.7)
        elif kind == 2:
            n_in = rng.lognormal(3.0, 0.5)
            n_tg = n_in * rng.uniform(0.8, 1.3)
        else:
            n_in, n_tg = rng.lognormal(5.0, 0.4), rng.lognormal(3.4, 0.4)
        yield {"inputs": tokens(n_in), "targets": tokens(n_tg)}


def mixture_stream(name: str, args: argparse.Namespace) -> Iterator[dict]:
    from taskmix.data.registry import MixtureRegistry

    vocabulary = None
    if args.vocab == "bytes":
        from taskmix.data.vocabulary import ByteVocabulary

        vocabulary = ByteVocabulary()
    lengths = {"inputs": args.input_length, "targets": args.target_length}
    return MixtureRegistry.get(name).get_stream(
        args.split, seed=args.seed, sequence_length=lengths, vocabulary=vocabulary
    )


def make_converter(args: argparse.Namespace, pack: bool) -> FeatureConverter:
    common = {"pack": pack, "max_open_rows": args.max_open_rows}
    if args.architecture == "encdec":
        return EncDecFeatureConverter(args.input_length, args.target_length, **common)
    length = args.input_length + args.target_length
    if args.architecture == "prefixlm":
        return PrefixLMFeatureConverter(length, **common)
    return DecoderOnlyFeatureConverter(length, **common)


def slot_counts(batch: Batch) -> dict[str, tuple[int, int]]:
    """(real tokens, slots) per stack, from the segment ids (0 = padding)."""
    out = {}
    for stack in ("encoder", "decoder"):
        seg = batch.get(f"{stack}_segment_ids")
        if seg is not None:
            out[stack] = (int((seg > 0).sum()), int(seg.size))
    return out


def summarize(batches: list[Batch]) -> dict[str, float]:
    real: dict[str, int] = {}
    slots: dict[str, int] = {}
    for batch in batches:
        for stack, (r, s) in slot_counts(batch).items():
            real[stack] = real.get(stack, 0) + r
            slots[stack] = slots.get(stack, 0) + s
    shares = {stack: real[stack] / slots[stack] for stack in real}
    shares["all"] = sum(real.values()) / sum(slots.values())
    shares["rows"] = sum(len(b["decoder_segment_ids"]) for b in batches)
    return shares


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mixture", help="a registered mixture (default: a synthetic stream)")
    parser.add_argument("--split", default="train")
    parser.add_argument(
        "--vocab",
        choices=["task", "bytes"],
        default="task",
        help="with --mixture: the tasks' own vocabulary or UTF-8 bytes",
    )
    parser.add_argument("--num-examples", type=int, default=20_000)
    parser.add_argument("--input-length", type=int, default=256)
    parser.add_argument("--target-length", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-open-rows", type=int, default=16)
    parser.add_argument(
        "--architecture", choices=["encdec", "decoder", "prefixlm"], default="encdec"
    )
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.num_examples < 2:
        parser.error("--num-examples must be at least 2")

    stream = mixture_stream(args.mixture, args) if args.mixture else synthetic_stream(args.seed)
    source = f"mixture {args.mixture!r}" if args.mixture else "synthetic skewed stream"

    # the first example is read untimed: it may build the vocabulary (train a tokenizer)
    examples = list(itertools.islice(stream, 1))
    start = time.perf_counter()
    examples += itertools.islice(stream, args.num_examples - 1)
    read_s = time.perf_counter() - start

    packer = make_converter(args, pack=True)
    start = time.perf_counter()
    packed = list(packer.iter_batches(examples, args.batch_size))
    pack_s = time.perf_counter() - start

    # What the training loop uses: each batch packed on its own, so its state restores exactly.
    from taskmix.training.batches import BatchStream

    per_batch = BatchStream(iter(examples), make_converter(args, pack=True), args.batch_size)
    num_batches = len(packed)
    trainer_packed = [next(per_batch) for _ in range(num_batches - 1)]

    fixed = list(make_converter(args, pack=False).iter_batches(examples, args.batch_size))
    padder = make_converter(args, pack=False)
    longest = [
        padder.pad_batch_to_longest(examples[i : i + args.batch_size])
        for i in range(0, len(examples), args.batch_size)
    ]

    n = len(examples)
    lengths = f"inputs {args.input_length}, targets {args.target_length}"
    print(
        f"source: {source}; {n} examples; {args.architecture}; {lengths}; batch {args.batch_size}"
    )
    print(f"  read (source -> preprocess -> tokenize): {(n - 1) / read_s:12,.0f} examples/s")
    print(f"  pack + batch (feature converter):        {n / pack_s:12,.0f} examples/s")
    whole = 1 / ((read_s / (n - 1)) + (pack_s / n))
    print(f"  whole pipeline:                          {whole:12,.0f} examples/s")
    print(f"  truncated: {dict(packer.report.truncated)}  dropped: {dict(packer.report.dropped)}")
    print()
    results = {
        "packed (first fit)": summarize(packed),
        "packed per batch": summarize(trainer_packed),
        "pad batch to longest": summarize(longest),
        "pad to full length": summarize(fixed),
    }
    stacks = [k for k in results["packed (first fit)"] if k not in ("all", "rows")]
    header = f"{'layout':<22}" + "".join(f"{s + ' non-pad':>16}" for s in stacks)
    print(header + f"{'all non-pad':>14}{'rows':>8}")
    for name, r in results.items():
        cells = "".join(f"{r[s]:>16.3f}" for s in stacks)
        print(f"{name:<22}{cells}{r['all']:>14.3f}{int(r['rows']):>8}")
    packed, padded = results["packed (first fit)"], results["pad batch to longest"]
    print()
    for stack in [*stacks, "all"]:
        print(
            f"packing / pad-to-longest non-pad ratio ({stack}): {packed[stack] / padded[stack]:.2f}x"
        )
    # The target is about the input side: the encoder (or the decoder-only sequence) at input
    # length 256; the decoder side of enc-dec depends on how long targets are vs target_length.
    side = stacks[0]
    for name in ("packed (first fit)", "packed per batch"):
        share = results[name][side]
        verdict = "yes" if share >= 0.9 else "NO"
        print(f"target: {name} {side} non-pad share >= 0.9: {verdict} ({share:.3f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
