"""Greedy decoding speed: taskmix's cached decoder vs transformers ``generate()``.

Same random-init weights (saved by taskmix, loaded by transformers), same inputs; asserts the
outputs are identical token for token, then prints examples/s for both and the ratio (medians
of interleaved repeats, so that load from other processes hits both sides alike).

Two settings, both run by default (``--setting``):
* ``fixed``: EOS is made unlikely so that every row runs ``--new-tokens`` steps (the worst case
  for taskmix: both sides do the same matrix products at every step);
* ``natural``: the EOS row of the output projection is scaled (in the shared weights, so both
  sides see it) until rows end at varied steps, as a trained model's do in evaluation; both
  decoders stop once every row has produced EOS.

Each setting also runs on a model with an adapter (``Adapter``: ``y + up(relu(down(y)))``)
around every block's feed-forward output projection ``wo``, the same module with the same
weights wrapped around taskmix's and transformers' ``DenseReluDense.wo``: taskmix decodes
through the model's modules, so the adapter counts (``--no-adapter`` skips these rows).

    .venv/bin/python bench/decode.py [--preset mini] [--version 1.1] [--batch 32] [--new-tokens 32]
                                     [--setting both|fixed|natural] [--threads 1] [--no-adapter]
"""

from __future__ import annotations

import argparse
import copy
import statistics
import tempfile
import time

import torch
from torch import nn

from taskmix.models import build_model, preset
from taskmix.models.generate import greedy_decode
from taskmix.models.hf import save_hf_checkpoint


class Adapter(nn.Module):
    """A bottleneck adapter after a projection: ``y = base(x); y + up(relu(down(y)))``."""

    def __init__(self, base: nn.Linear, bottleneck: int = 32):
        super().__init__()
        self.base = base
        self.down = nn.Linear(base.out_features, bottleneck)
        self.up = nn.Linear(bottleneck, base.out_features)

    @property
    def weight(self) -> torch.Tensor:  # transformers' T5 feed-forward reads ``wo.weight``
        return self.base.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.base(x)
        return y + self.up(torch.relu(self.down(y)))


def _feed_forwards(model: nn.Module) -> list[nn.Module]:
    """Every block's ``DenseReluDense`` (taskmix and transformers name them alike), in order."""
    return [m for name, m in model.named_modules() if name.endswith("DenseReluDense")]


def _add_adapters(model: nn.Module) -> list[Adapter]:
    """Wrap every block's ``wo`` in a new adapter; returns them (in block order)."""
    adapters = []
    for feed_forward in _feed_forwards(model):
        feed_forward.wo = Adapter(feed_forward.wo)
        adapters.append(feed_forward.wo)
    return adapters


def _remove_adapters(model: nn.Module) -> None:
    for feed_forward in _feed_forwards(model):
        feed_forward.wo = feed_forward.wo.base


def _copy_adapters(adapters: list[Adapter], model: nn.Module) -> None:
    """Wrap ``model``'s ``wo`` projections in copies of ``adapters`` (same weights)."""
    for adapter, feed_forward in zip(adapters, _feed_forwards(model), strict=True):
        twin = copy.deepcopy(adapter)
        twin.base = feed_forward.wo
        feed_forward.wo = twin


def _times(fns: dict, repeats: int) -> dict[str, list[float]]:
    """Seconds per call of each function over ``repeats`` interleaved rounds (after a warm-up)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()  # warm-up
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def _calibrate_eos(model, head: torch.Tensor, eos: int, inputs: torch.Tensor, steps: int) -> str:
    """Scale the EOS row of ``head`` until about half of the rows have stopped by mid-length,
    so rows end at varied steps. Returns a summary of the resulting lengths."""
    original = head[eos].clone()
    for boost in torch.linspace(1.0, 8.0, 57):
        head[eos] = original * boost
        out = greedy_decode(model, inputs, max_length=steps)
        ended = (out == eos).any(1)
        lengths = torch.where(ended, (out == eos).int().argmax(1) + 1, steps)
        if float(lengths.float().median()) <= steps / 2:
            return (
                f"eos boost {float(boost):.3f}: lengths min {int(lengths.min())} median "
                f"{float(lengths.float().median()):.0f} max {int(lengths.max())}, "
                f"{int(ended.sum())}/{len(out)} rows end"
            )
    raise SystemExit("could not calibrate an EOS boost; try another --seed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="mini")
    parser.add_argument("--version", default="1.1", choices=["1.0", "1.1"])
    # 1536: the demo's SentencePiece vocabulary (1500 pieces) padded to a multiple of 128;
    # 359: taskmix's ByteVocabulary; 32128: T5's SentencePiece.
    parser.add_argument("--vocab-size", type=int, default=1536)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--input-length", type=int, default=32)
    parser.add_argument("--new-tokens", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=9)
    parser.add_argument(
        "--setting",
        default="both",
        choices=["both", "fixed", "natural"],
        help="fixed: every row runs --new-tokens steps; natural: rows end at varied steps",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--no-adapter", action="store_true", help="skip the rows with an adapter-wrapped model"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=1,
        help="torch threads (1: stable on a shared machine; 0: torch default)",
    )
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    from transformers.utils import logging

    logging.set_verbosity_error()
    settings = ["fixed", "natural"] if args.setting == "both" else [args.setting]
    ratios = {}
    for adapter in [False] if args.no_adapter else [False, True]:
        for setting in settings:
            name = f"adapter {setting}" if adapter else setting
            ratios[name] = run_setting(args, natural=setting == "natural", adapter=adapter)
    print("summary: " + ", ".join(f"{name} {ratio:.2f}x" for name, ratio in ratios.items()))


def run_setting(args, *, natural: bool, adapter: bool) -> float:
    """Time both decoders in one setting; prints the rates and returns the median speed-up."""
    from transformers import T5ForConditionalGeneration

    torch.manual_seed(args.seed)
    config = preset(args.preset, version=args.version, vocab_size=args.vocab_size)
    ours = build_model(config).eval()
    inputs = torch.randint(2, config.vocab_size - 100, (args.batch, args.input_length))
    lengths = torch.randint(args.input_length // 2, args.input_length + 1, (args.batch,))
    inputs[torch.arange(args.input_length)[None, :] >= lengths[:, None]] = 0  # right padding
    mask = (inputs > 0).long()

    eos = config.eos_token_id
    head = ours.shared.weight if ours.lm_head is None else ours.lm_head.weight
    adapters = _add_adapters(ours) if adapter else []  # calibrate EOS on the decoded model
    with torch.no_grad():
        if natural:
            setting = _calibrate_eos(ours, head, eos, inputs, args.new_tokens)
        else:
            head[eos] *= 0.1  # keep EOS unlikely so both decoders run every step
            setting = "fixed length (EOS suppressed)"
    if adapter:
        wrapped = greedy_decode(ours, inputs, max_length=args.new_tokens)
        _remove_adapters(ours)  # the checkpoint holds the T5 weights only
        plain = greedy_decode(ours, inputs, max_length=args.new_tokens)
        assert not torch.equal(wrapped, plain), "the adapters do not change the output"
        setting += "; adapter around every wo"
    with tempfile.TemporaryDirectory() as tmp:
        save_hf_checkpoint(ours, f"{tmp}/ckpt")
        hf = T5ForConditionalGeneration.from_pretrained(f"{tmp}/ckpt").eval()
    if adapter:
        _copy_adapters(adapters, ours)
        _copy_adapters(adapters, hf)

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

    times = _times({"ours": run_ours, "hf": run_hf}, args.repeats)
    median = {name: statistics.median(ts) for name, ts in times.items()}
    best = {name: min(ts) for name, ts in times.items()}
    print(
        f"preset={args.preset} v{args.version} batch={args.batch} input_len={args.input_length} "
        f"new_tokens={args.new_tokens} vocab={args.vocab_size} threads={torch.get_num_threads()} "
        f"repeats={args.repeats} outputs identical: yes ({a.shape[1]} steps)"
    )
    print(f"setting: {setting}")
    print("                        median examples/s   (best)")
    for label, name in [("taskmix greedy_decode", "ours"), ("transformers generate", "hf")]:
        print(
            f"{label} : {args.batch / median[name]:8.1f}          ({args.batch / best[name]:.1f})"
        )
    print(
        f"speed-up              : {median['hf'] / median['ours']:8.2f}x"
        f"         ({best['hf'] / best['ours']:.2f}x)"
    )
    return median["hf"] / median["ours"]


if __name__ == "__main__":
    main()
