"""Greedy decoding speed: taskmix's cached decoder vs transformers ``generate()``.

Same random-init weights (saved by taskmix, loaded by transformers), same inputs; asserts the
outputs are identical token for token, then prints examples/s for both and the ratio.

    .venv/bin/python bench/decode.py [--preset mini] [--version 1.1] [--batch 32] [--new-tokens 32]
"""

from __future__ import annotations

import argparse
import tempfile
import time

import torch

from taskmix.models import build_model, preset
from taskmix.models.generate import greedy_decode
from taskmix.models.hf import save_hf_checkpoint


def _rates(fns: dict, examples: int, repeats: int) -> dict[str, float]:
    """Examples/s of each function, best of ``repeats``; runs are interleaved so that load from
    other processes hits both sides alike."""
    best = dict.fromkeys(fns, float("inf"))
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            best[name] = min(best[name], time.perf_counter() - start)
    return {name: examples / seconds for name, seconds in best.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--version", default="1.1", choices=["1.0", "1.1"])
    # 359 = taskmix's ByteVocabulary, the vocabulary of CPU-sized runs; 32128 = T5's SentencePiece.
    parser.add_argument("--vocab-size", type=int, default=359)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: stable on a shared machine; 0: torch default)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging

    logging.set_verbosity_error()
    torch.manual_seed(0)
    config = preset(args.preset, version=args.version, vocab_size=args.vocab_size)
    ours = build_model(config).eval()
    # Keep EOS unlikely so both decoders run the full number of steps.
    with torch.no_grad():
        ours.shared.weight[config.eos_token_id] *= 0.1
    with tempfile.TemporaryDirectory() as tmp:
        save_hf_checkpoint(ours, f"{tmp}/ckpt")
        hf = T5ForConditionalGeneration.from_pretrained(f"{tmp}/ckpt").eval()

    inputs = torch.randint(2, config.vocab_size - 100, (args.batch, args.input_length))
    lengths = torch.randint(args.input_length // 2, args.input_length + 1, (args.batch,))
    inputs[torch.arange(args.input_length)[None, :] >= lengths[:, None]] = 0  # right padding
    mask = (inputs > 0).long()

    def run_ours() -> torch.Tensor:
        return greedy_decode(ours, inputs, max_length=args.new_tokens)

    def run_hf() -> torch.Tensor:
        with torch.inference_mode():
            out = hf.generate(
                input_ids=inputs,
                attention_mask=mask,
                do_sample=False,
                num_beams=1,
                max_new_tokens=args.new_tokens,
            )
        return out[:, 1:]  # drop the decoder start token

    a, b = run_ours(), run_hf()
    width = max(a.shape[1], b.shape[1])
    a = torch.nn.functional.pad(a, (0, width - a.shape[1]))
    b = torch.nn.functional.pad(b, (0, width - b.shape[1]))
    assert torch.equal(a, b), "taskmix and transformers greedy outputs differ"

    rates = _rates({"ours": run_ours, "hf": run_hf}, args.batch, args.repeats)
    ours_rate, hf_rate = rates["ours"], rates["hf"]
    print(
        f"preset={args.preset} v{args.version} batch={args.batch} input_len={args.input_length} "
        f"new_tokens={args.new_tokens} vocab={args.vocab_size} threads={torch.get_num_threads()} outputs identical: yes"
    )
    print(f"taskmix greedy_decode : {ours_rate:8.1f} examples/s")
    print(f"transformers generate : {hf_rate:8.1f} examples/s")
    print(f"speed-up              : {ours_rate / hf_rate:8.2f}x")


if __name__ == "__main__":
    main()
