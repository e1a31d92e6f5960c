"""Training throughput: taskmix's packed training step vs transformers' padded one, and MFU.

Part 1 (comparison, ``--preset``): the same examples of the default mixture go through
(a) taskmix: packed rows (``BatchStream`` + ``EncDecFeatureConverter``, input/target length
    256/64, with per-token task ids) into ``T5Model``, one step as in
    ``taskmix.training.trainer``: forward, ``(loss_sum / weight).backward()`` and the per-task
    loss sums (``accumulate_gradients``), clip to 1.0, Adafactor step;
(b) ``transformers.T5ForConditionalGeneration`` with the same config and weights (written by
    ``save_hf_checkpoint``, read by ``from_pretrained``), batched exactly as ``Seq2SeqTrainer``
    + ``DataCollatorForSeq2Seq`` do it: each batch padded to its longest example, labels padded
    with -100, ``decoder_input_ids`` from ``prepare_decoder_input_ids_from_labels``; mean loss,
    backward, clip to 1.0, the same Adafactor.
The HF batch size is the number of examples whose padded batch uses the same token budget
(rows x (input + target length) slots) as a packed batch. Both run in one process, interleaved
round by round; tokens/s is non-padding (input + target) tokens per second of training steps,
warm-up steps excluded; medians over rounds are printed.

Part 2 (MFU, ``--mfu-preset``, T5-small by default): taskmix's step on packed batches against a
measured fp32 matmul peak with the same threads (the better of ``torch.mm`` and oneDNN),
measured between steps (each step against the better of the measurements just before and after
it: the shared machine drifts). Model FLOPs of a step, counted on non-padding tokens only
(padding and attention across packed neighbours are not useful work):

    6 x (P_enc x T_in + P_dec x T_tgt) + 12 x (H x d_kv) x sum over layers of attended pairs

P_enc / P_dec: weights in matmuls that each encoder / decoder token passes through (the
decoder's cross-attention k and v projections count with the encoder tokens, the output
projection with the decoder tokens, embedding lookups are free); T_in / T_tgt: non-padding
tokens; attended pairs per example: n_in^2 (encoder), n_tgt (n_tgt + 1) / 2 (causal decoder),
n_tgt x n_in (cross-attention). 6 = 2 (multiply-add) x 3 (forward + two backward matmuls).

    TASKMIX_CACHE=/tmp/tmcache .venv/bin/python bench/train_throughput.py [--threads 2]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from taskmix.training.allocator import keep_freed_memory, use_huge_pages

# torch reads this when it first allocates, so before it is imported; both sides of the
# comparison get it, as ``taskmix train`` does.
HUGE_PAGES = use_huge_pages()

import numpy as np
import torch

from taskmix.data.feature_converters import TASK_FEATURES, EncDecFeatureConverter, to_torch
from taskmix.models import T5Config, build_model, preset
from taskmix.models.onednn import onednn_enabled
from taskmix.models.t5 import T5Model
from taskmix.training.batches import BatchStream
from taskmix.training.optim import make_optimizer
from taskmix.training.task_losses import TaskLosses
from taskmix.training.trainer import accumulate_gradients

Example = tuple[np.ndarray, np.ndarray]  # (inputs, targets), int32, each ending in EOS


# --- data ---------------------------------------------------------------------------------
def packed_batches(
    num_batches: int, rows: int, input_length: int, target_length: int, *, seed: int = 0
) -> list[dict[str, np.ndarray]]:
    """The first ``num_batches`` packed training batches of the default mixture, built by the
    trainer's own ``BatchStream`` (so the packing density is what training gets)."""
    from taskmix.catalog import load_task_files
    from taskmix.data.registry import MixtureRegistry

    load_task_files()  # the default tasks and mixtures
    mixture = MixtureRegistry.get("default")
    stream = mixture.get_stream(
        "train", seed=seed, sequence_length={"inputs": input_length, "targets": target_length}
    )
    task_names = [task.name for task in mixture.tasks]  # per-token task ids, as in training
    converter = EncDecFeatureConverter(input_length, target_length, task_names=task_names)
    batches = BatchStream(stream, converter, rows)
    return [next(batches) for _ in range(num_batches)]


def unpack(batch: dict[str, np.ndarray]) -> list[Example]:
    """The examples inside packed rows, in row order: the HF side gets exactly these."""
    examples = []
    for r in range(batch["encoder_input_tokens"].shape[0]):
        enc_seg, dec_seg = batch["encoder_segment_ids"][r], batch["decoder_segment_ids"][r]
        for s in range(1, int(enc_seg.max(initial=0)) + 1):
            examples.append(
                (
                    batch["encoder_input_tokens"][r][enc_seg == s],
                    batch["decoder_target_tokens"][r][dec_seg == s],
                )
            )
    return examples


def non_pad_tokens(examples: Sequence[Example]) -> int:
    return sum(len(i) + len(t) for i, t in examples)


def hf_batch_size(examples: Sequence[Example], slots: int) -> int:
    """Largest per-step example count whose padded batches use at most ``slots`` token slots
    on average (pad to longest inputs + longest labels), i.e. the packed batch's token budget."""
    best = 1
    for n in range(1, len(examples) + 1):
        chunks = [examples[i : i + n] for i in range(0, len(examples) - n + 1, n)]
        used = np.mean(
            [n * (max(len(i) for i, _ in c) + max(len(t) for _, t in c)) for c in chunks]
        )
        if used > slots:
            break
        best = n
    return best


def hf_collated_batches(examples: Sequence[Example], batch_size: int, hf_model) -> list[dict]:
    """``DataCollatorForSeq2Seq`` batches of a tokenized dataset (input_ids, attention_mask,
    labels), as ``Seq2SeqTrainer`` feeds them to the model."""
    from transformers import DataCollatorForSeq2Seq

    collator = DataCollatorForSeq2Seq(
        _pad_only_tokenizer(), model=hf_model, label_pad_token_id=-100, padding="longest"
    )
    features = [
        {
            "input_ids": inputs.tolist(),
            "attention_mask": [1] * len(inputs),
            "labels": targets.tolist(),
        }
        for inputs, targets in examples
    ]
    return [collator(features[i : i + batch_size]) for i in range(0, len(features), batch_size)]


def _pad_only_tokenizer():
    """A fast tokenizer that knows only T5's special ids (pad 0, eos 1, unk 2): the collator
    uses nothing but its padding, and the examples are already token ids."""
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    return PreTrainedTokenizerFast(
        tokenizer_object=Tokenizer(WordLevel(vocab, unk_token="<unk>")),
        pad_token="<pad>",
        eos_token="</s>",
        unk_token="<unk>",
    )


# --- training steps -----------------------------------------------------------------------
def taskmix_step(model: torch.nn.Module, optimizer) -> Callable[[dict], None]:
    """One step exactly as ``taskmix.training.trainer.train`` does it (grad_accum 1, fp32),
    per-task loss sums included."""
    # ids of the default mixture's tasks (24 of them) index these sums
    task_losses = TaskLosses([str(i) for i in range(64)], torch.device("cpu"))

    def step(batch: dict) -> None:
        weight = float(batch["decoder_loss_weights"].sum())
        accumulate_gradients(model, [batch], weight=weight, task_losses=task_losses)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def hf_step(model: torch.nn.Module, optimizer) -> Callable[[dict], None]:
    """One ``Trainer.training_step`` + optimizer step: mean loss, backward, clip 1.0, step."""

    def step(batch: dict) -> None:
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step


def run_steps(step: Callable[[dict], None], batches: Sequence[dict]) -> float:
    start = time.perf_counter()
    for batch in batches:
        step(batch)
    return time.perf_counter() - start


def interleaved(
    step_a: Callable[[dict], None],
    batches_a: Sequence[dict],
    sizes_a: Sequence[int],
    step_b: Callable[[dict], None],
    batches_b: Sequence[dict],
    sizes_b: Sequence[int],
) -> tuple[float, float]:
    """Seconds each side spends on its batches, stepping them alternately so that both sides
    are at the same point of the example set (the load of a shared machine hits both alike)."""
    time_a = time_b = 0.0
    done_a = done_b = 0  # examples processed so far
    i = j = 0
    while i < len(batches_a) or j < len(batches_b):
        if j >= len(batches_b) or (i < len(batches_a) and done_a <= done_b):
            time_a += run_steps(step_a, [batches_a[i]])
            done_a += sizes_a[i]
            i += 1
        else:
            time_b += run_steps(step_b, [batches_b[j]])
            done_b += sizes_b[j]
            j += 1
    return time_a, time_b


# --- FLOPs --------------------------------------------------------------------------------
def matmul_params(config: T5Config) -> tuple[int, int, int]:
    """Weights in matmuls per encoder token, per decoder token, and per encoder token for each
    decoder layer's cross-attention k/v (already multiplied by the number of decoder layers)."""
    d, inner = config.d_model, config.num_heads * config.d_kv
    ff = (3 if config.is_gated else 2) * d * config.d_ff
    attn = 4 * d * inner
    enc = config.num_layers * (attn + ff)
    dec = config.num_decoder_layers * (attn + 2 * d * inner + ff) + d * config.vocab_size
    cross_kv = config.num_decoder_layers * 2 * d * inner
    return enc, dec, cross_kv


def model_flops(config: T5Config, examples: Sequence[Example]) -> float:
    """Training FLOPs (forward + backward) of these examples on non-padding tokens."""
    enc, dec, cross_kv = matmul_params(config)
    inner = config.num_heads * config.d_kv
    t_in = sum(len(i) for i, _ in examples)
    t_tgt = sum(len(t) for _, t in examples)
    pairs = config.num_layers * sum(
        len(i) ** 2 for i, _ in examples
    ) + config.num_decoder_layers * sum(
        len(t) * (len(t) + 1) // 2 + len(t) * len(i) for i, t in examples
    )
    return 6.0 * ((enc + cross_kv) * t_in + dec * t_tgt) + 12.0 * inner * pairs


def matmul_peak(size: int = 2048, repeats: int = 5) -> float:
    """Best fp32 FLOP/s of a ``size``-cube product with the current threads, over the fp32 GEMMs
    this torch build offers: ``torch.mm`` (MKL) and, where available, oneDNN (which taskmix uses
    on CPU; on AVX-512 AMD CPUs it is about twice MKL's speed, so ``torch.mm`` alone would
    understate the peak)."""
    return max(matmul_peaks(size, repeats).values())


def matmul_peaks(size: int = 2048, repeats: int = 5) -> dict[str, float]:
    """FLOP/s of each fp32 GEMM: ``{"torch.mm": ..., "onednn": ...}``."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    products = {"torch.mm": lambda: torch.mm(a, b)}
    if onednn_enabled(a):
        weight = b.t().contiguous()  # linear(a, W) = a @ W.T
        products["onednn"] = lambda: torch.ops.mkldnn._linear_pointwise(
            a, weight, None, "none", [], ""
        )
    peaks = {}
    for name, product in products.items():
        product()
        best = float("inf")
        for _ in range(repeats):
            start = time.perf_counter()
            product()
            best = min(best, time.perf_counter() - start)
        peaks[name] = 2.0 * size**3 / best
    return peaks


# --- the two parts ------------------------------------------------------------------------
@dataclass
class Setup:
    config: T5Config
    batches: list[dict[str, np.ndarray]]
    examples: list[Example]


def make_setup(
    args, preset_name: str, version: str, steps: int, rows: int, warmup: int | None = None
) -> Setup:
    from taskmix.default_data import default_vocabulary

    vocab_size = -(-default_vocabulary().vocab_size // 128) * 128
    overrides = {} if args.dropout is None else {"dropout_rate": args.dropout}
    config = preset(preset_name, version=version, vocab_size=vocab_size, **overrides)
    warmup = args.warmup if warmup is None else warmup
    batches = packed_batches(warmup + steps, rows, args.input_length, args.target_length)
    examples = [e for b in batches for e in unpack(b)]
    in_batches = sum(
        int((b["encoder_input_tokens"] > 0).sum() + (b["decoder_target_tokens"] > 0).sum())
        for b in batches
    )
    if in_batches != non_pad_tokens(examples):  # the HF side must get exactly these tokens
        raise AssertionError(
            f"unpacked {non_pad_tokens(examples)} tokens, batches hold {in_batches}"
        )
    return Setup(config, batches, examples)


def compare(args) -> None:
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    setup = make_setup(args, args.preset, args.version, args.steps, args.batch_size)
    torch.manual_seed(0)
    ours = build_model(setup.config).train()
    ours.segmented_attention = not args.dense_attention
    with tempfile.TemporaryDirectory() as tmp:
        save_hf_checkpoint(ours, f"{tmp}/ckpt")
        hf = T5ForConditionalGeneration.from_pretrained(f"{tmp}/ckpt").train()

    warm = sum(len(unpack(b)) for b in setup.batches[: args.warmup])
    timed_examples = setup.examples[warm:]
    slots = args.batch_size * (args.input_length + args.target_length)
    n_hf = args.hf_batch_size or hf_batch_size(timed_examples, slots)
    ours_warm = [to_torch(b) for b in setup.batches[: args.warmup]]
    ours_timed = [to_torch(b) for b in setup.batches[args.warmup :]]
    hf_warm = hf_collated_batches(setup.examples[:warm], n_hf, hf)
    hf_timed = hf_collated_batches(timed_examples, n_hf, hf)

    tokens = non_pad_tokens(timed_examples)
    fill_ours = tokens / (len(ours_timed) * slots)
    fill_hf = tokens / sum(b["input_ids"].numel() + b["labels"].numel() for b in hf_timed)
    flops = model_flops(setup.config, timed_examples)
    print(
        f"[compare] preset {args.preset} v{args.version}: {num_params(ours) / 1e6:.1f}M params, "
        f"{len(timed_examples)} examples, {tokens} non-pad tokens timed per round"
    )
    print(
        f"  taskmix: {len(ours_timed)} steps x {args.batch_size} packed rows of "
        f"{args.input_length}+{args.target_length} (fill {fill_ours:.0%})"
    )
    print(f"  HF:      {len(hf_timed)} steps x {n_hf} padded examples (fill {fill_hf:.0%})")

    step_ours = taskmix_step(
        maybe_compile(ours, args), make_optimizer("adafactor", ours.parameters(), lr=1e-3)
    )
    step_hf = hf_step(hf, make_optimizer("adafactor", hf.parameters(), lr=1e-3))
    run_steps(step_ours, ours_warm)
    run_steps(step_hf, hf_warm)
    peak_before = matmul_peak()
    rates_ours, rates_hf, ratios = [], [], []
    ours_sizes = [len(unpack(b)) for b in setup.batches[args.warmup :]]
    hf_sizes = [len(b["input_ids"]) for b in hf_timed]
    for r in range(args.rounds):
        t_ours, t_hf = interleaved(step_ours, ours_timed, ours_sizes, step_hf, hf_timed, hf_sizes)
        rates_ours.append(tokens / t_ours)
        rates_hf.append(tokens / t_hf)
        ratios.append(t_hf / t_ours)
        print(
            f"  round {r}: taskmix {tokens / t_ours:8.0f} tok/s   HF {tokens / t_hf:8.0f} tok/s   "
            f"ratio {t_hf / t_ours:.2f}x"
        )
    peak = max(peak_before, matmul_peak())  # shared machine: the better of before / after
    med_ours, med_hf = statistics.median(rates_ours), statistics.median(rates_hf)
    per_token = flops / tokens
    each = ", ".join(f"{name} {value / 1e9:.0f}" for name, value in matmul_peaks().items())
    print(
        f"  fp32 matmul peak {peak / 1e9:.1f} GFLOP/s ({torch.get_num_threads()} threads; "
        f"now: {each})"
    )
    print(
        f"  median: taskmix {med_ours:.0f} tok/s (MFU {med_ours * per_token / peak:.1%})   "
        f"HF {med_hf:.0f} tok/s (MFU {med_hf * per_token / peak:.1%})   "
        f"speed-up {statistics.median(ratios):.2f}x (median of rounds)"
    )


def mfu(args) -> None:
    setup = make_setup(
        args,
        args.mfu_preset,
        args.mfu_version,
        args.mfu_steps,
        args.mfu_batch_size,
        args.mfu_warmup,
    )
    torch.manual_seed(0)
    model = build_model(setup.config).train()
    model.segmented_attention = not args.dense_attention
    compiled = maybe_compile(model, args)
    optimizer = make_optimizer("adafactor", model.parameters(), lr=1e-3)
    step = taskmix_step(compiled, optimizer)
    batches = [to_torch(b) for b in setup.batches]
    run_steps(step, batches[: args.mfu_warmup])
    # The machine is shared and its speed drifts, so the peak is measured between steps and each
    # step is compared with the better of the measurements just before and just after it.
    peaks = [matmul_peak()]
    times, backward_times = [], []
    for batch in batches[args.mfu_warmup :]:
        start = time.perf_counter()
        out = compiled(**{k: v for k, v in batch.items() if k not in TASK_FEATURES})
        (out.loss_sum / max(float(batch["decoder_loss_weights"].sum()), 1.0)).backward()
        backward_times.append(time.perf_counter() - start)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        times.append(time.perf_counter() - start)
        peaks.append(matmul_peak())
    step_peaks = [max(a, b) for a, b in zip(peaks, peaks[1:], strict=False)]
    examples = [unpack(b) for b in setup.batches[args.mfu_warmup :]]
    flops = [model_flops(setup.config, e) for e in examples]
    rows = list(zip(flops, times, backward_times, step_peaks, strict=True))
    achieved = statistics.median(f / t for f, t, _, _ in rows)
    mfu_step = statistics.median(f / t / p for f, t, _, p in rows)
    mfu_fwd_bwd = statistics.median(f / b / p for f, _, b, p in rows)
    tokens = statistics.median(non_pad_tokens(e) / t for e, t in zip(examples, times, strict=True))
    print(
        f"[mfu] preset {args.mfu_preset} v{args.mfu_version}: {num_params(model) / 1e6:.1f}M params "
        f"(vocab {setup.config.vocab_size}), {args.mfu_batch_size} packed rows of "
        f"{args.input_length}+{args.target_length}, {len(times)} timed steps"
    )
    print(
        "  per step: forward+backward s / total s / peak GFLOP/s: "
        + ", ".join(f"{b:.2f}/{t:.2f}/{p / 1e9:.0f}" for _, t, b, p in rows)
    )
    print(
        f"  {tokens:.0f} non-pad tok/s, {achieved / 1e9:.1f} model GFLOP/s "
        f"({torch.get_num_threads()} threads); medians over steps:"
    )
    print(
        f"  MFU {mfu_step:.1%} of the full step "
        f"(forward+backward alone: {mfu_fwd_bwd:.1%}; the rest is clipping + Adafactor)"
    )


def num_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def maybe_compile(model: T5Model, args) -> torch.nn.Module:
    return torch.compile(model) if args.compile else model


def save_hf_checkpoint(model, folder: str) -> None:
    from taskmix.models.hf import save_hf_checkpoint as save

    save(model, folder)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tiny", help="model size of the comparison")
    parser.add_argument("--version", default="1.1", choices=["1.0", "1.1"])
    parser.add_argument("--steps", type=int, default=3, help="timed packed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=32, help="packed rows per batch")
    parser.add_argument("--hf-batch-size", type=int, default=0, help="0: same token budget")
    parser.add_argument("--input-length", type=int, default=256)
    parser.add_argument("--target-length", type=int, default=64)
    parser.add_argument("--mfu-preset", default="small", help="'none' skips the MFU part")
    parser.add_argument("--mfu-version", default="1.0", choices=["1.0", "1.1"])
    parser.add_argument("--mfu-steps", type=int, default=8)
    parser.add_argument(
        "--mfu-warmup",
        type=int,
        default=8,
        help="untimed steps before the MFU part's: over a run's first steps the heap grows "
        "(page faults) and oneDNN compiles kernels for each new token count; a long run "
        "spends nearly all its steps past that",
    )
    parser.add_argument("--mfu-batch-size", type=int, default=16, help="packed rows (MFU part)")
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's 0.1")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: leave default)")
    parser.add_argument("--compile", action="store_true", help="torch.compile taskmix's model")
    parser.add_argument(
        "--dense-attention", action="store_true", help="ablation: masks over whole packed rows"
    )
    parser.add_argument("--skip-compare", action="store_true")
    args = parser.parse_args()
    print(
        f"memory set up as taskmix's trainer does: malloc keeps freed memory "
        f"{keep_freed_memory()}, huge pages {HUGE_PAGES}"
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if not args.skip_compare:
        compare(args)
    if args.mfu_preset != "none":
        mfu(args)
    print(f"total {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
