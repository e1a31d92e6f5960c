#!/usr/bin/env python3
"""Data-pipeline benchmark: examples/s and the share of non-pad tokens, packing vs padding.

    python bench/data_pipeline.py                  # the default mixture, end to end
    python bench/data_pipeline.py --mixture NAME   # another registered mixture
    python bench/data_pipeline.py --synthetic      # a synthetic, skewed stream of token arrays

One timed loop reads N examples from the mixture stream and packs them into batches: source ->
preprocessors -> tokenizer -> feature converter, so the whole-pipeline examples/s is measured
end to end (the first example is read before the clock starts: it may build the vocabulary).
The same examples are then laid out four ways, at the same length limits, and the share of
real (non-pad) token slots of each is compared:

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
    from taskmix.catalog import load_task_files
    from taskmix.data.registry import MixtureRegistry

    load_task_files()  # the default tasks and mixtures
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


def complete_batches(batches: Iterator[Batch]) -> Iterator[Batch]:
    """Every batch a finite example stream fills; the partial one at its end is lost."""
    while True:
        try:
            yield next(batches)
        except StopIteration:
            return


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
    parser.add_argument("--mixture", default="default", help="a registered mixture (default)")
    parser.add_argument(
        "--synthetic", action="store_true", help="a synthetic token stream instead of a mixture"
    )
    parser.add_argument("--split", default="train")
    parser.add_argument(
        "--vocab",
        choices=["task", "bytes"],
        default="task",
        help="the mixture tasks' own vocabulary (default) or UTF-8 bytes",
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
    if args.num_examples < 1:
        parser.error("--num-examples must be at least 1")

    stream = synthetic_stream(args.seed) if args.synthetic else mixture_stream(args.mixture, args)
    source = "synthetic skewed stream" if args.synthetic else f"mixture {args.mixture!r}"
    next(stream)  # untimed warm-up: may generate the default data and train the tokenizer

    # One timed loop, source to batches; the examples are kept for the other layouts.
    examples: list[dict] = []

    def recorded(items: Iterator[dict]) -> Iterator[dict]:
        for example in items:
            examples.append(example)
            yield example

    packer = make_converter(args, pack=True)
    start = time.perf_counter()
    packed = list(
        packer.iter_batches(recorded(itertools.islice(stream, args.num_examples)), args.batch_size)
    )
    whole_s = time.perf_counter() - start
    n = len(examples)

    # Breakdown only: the converter alone on the same examples.
    start = time.perf_counter()
    for _ in make_converter(args, pack=True).iter_batches(examples, args.batch_size):
        pass
    pack_s = time.perf_counter() - start

    # What the training loop uses: each batch packed on its own, so its state restores exactly.
    from taskmix.training.batches import BatchStream

    per_batch = BatchStream(iter(examples), make_converter(args, pack=True), args.batch_size)
    trainer_packed = list(complete_batches(per_batch))

    fixed = list(make_converter(args, pack=False).iter_batches(examples, args.batch_size))
    padder = make_converter(args, pack=False)
    longest = [
        padder.pad_batch_to_longest(examples[i : i + args.batch_size])
        for i in range(0, n, args.batch_size)
    ]

    lengths = f"inputs {args.input_length}, targets {args.target_length}"
    print(
        f"source: {source}; {n} examples; {args.architecture}; {lengths}; batch {args.batch_size}"
    )
    stages = (
        "synthetic tokens -> pack" if args.synthetic else "source -> preprocess -> tokenize -> pack"
    )
    print(f"  whole pipeline ({stages}), timed end to end:")
    print(f"      {n / whole_s:12,.0f} examples/s  ({whole_s:.2f} s)")
    print(f"  of which the feature converter alone:  {n / pack_s:12,.0f} examples/s")
    print(
        f"  converter counts: {packer.report.summary()}  truncated: {dict(packer.report.truncated)}"
    )
    if not args.synthetic:
        totals = {
            kind: sum(r.summary()[kind] for r in stream.reports.values())
            for kind in ("skipped", "dropped")
        }
        print(f"  task counts (all tasks, first epoch): {totals}")
    print()
    results = {"packed (first fit)": summarize(packed)}
    if trainer_packed:  # none when there were too few examples for one complete batch
        results["packed per batch"] = summarize(trainer_packed)
    results["pad batch to longest"] = summarize(longest)
    results["pad to full length"] = summarize(fixed)
    stacks = [k for k in results["packed (first fit)"] if k not in ("all", "rows")]
    header = f"{'layout':<22}" + "".join(f"{s + ' non-pad':>16}" for s in stacks)
    print(header + f"{'all non-pad':>14}{'rows':>8}")
    for name, r in results.items():
        cells = "".join(f"{r[s]:>16.3f}" for s in stacks)
        print(f"{name:<22}{cells}{r['all']:>14.3f}{int(r['rows']):>8}")
    packed_r, padded_r = results["packed (first fit)"], results["pad batch to longest"]
    print()
    print("non-pad share, packing / padding each batch to its longest example:")
    for stack in [*stacks, "all"]:
        p, q = packed_r[stack], padded_r[stack]
        print(f"  {stack:<8} {p:.3f} / {q:.3f} = {p / q:.2f}x")
    # The target is about the input side: the encoder (or the decoder-only sequence) at input
    # length 256; the decoder side of enc-dec depends on how long targets are vs target_length.
    side = stacks[0]
    for name in ("packed (first fit)", "packed per batch"):
        if name not in results:
            continue
        share = results[name][side]
        verdict = "yes" if share >= 0.9 else "NO"
        print(
            f"target: {name} {side} non-pad share >= 0.9 at input length "
            f"{args.input_length}: {verdict} ({share:.3f})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
