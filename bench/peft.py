"""Parameter-efficient fine-tuning: taskmix's adapter and LoRA steps vs full fine-tuning, vs the
``adapters`` library and vs ``peft`` (issue #11).

One run, the same examples, model weights, threads, fp32 and optimizer on every side. Five
sides, each a training step as its users run it:

* ``taskmix-full``: taskmix's training step (as ``bench/train_throughput.py``: packed rows of
  the default mixture from ``BatchStream`` + ``EncDecFeatureConverter``, input/target length
  256/64, ``accumulate_gradients`` with the per-task loss sums, clip to 1.0, optimizer step)
  training every parameter;
* ``taskmix-adapter``: the same step on the same model with bottleneck adapters
  (``models.adapters``, as an adapter run adds them: ``training.adapting.apply_adapter``, then
  ``select_trainable``), dim 64 for ``small`` (d_model / 8), ReLU, ``placement: sum`` and
  ``train_layer_norms: false``: only the adapters train, as the ``adapters`` library trains them;
* ``taskmix-lora``: the same step with LoRA (``models.lora``), rank 8, alpha 16, targets q and v,
  dropout 0; only the LoRA matrices train;
* ``peft-lora``: ``transformers.T5ForConditionalGeneration`` with ``peft.get_peft_model`` and
  ``LoraConfig(task_type="SEQ_2_SEQ_LM", r=8, lora_alpha=16, target_modules=["q", "v"],
  lora_dropout=0.0)``;
* ``adapters-lib``: the same HF T5 with the ``adapters`` library: ``adapters.init(model)``,
  ``add_adapter(name, SeqBnConfig(reduction_factor=8, non_linearity="relu"))``,
  ``train_adapter(name)`` (which freezes everything else, layer norms included). On T5 that
  adapter computes ``x + f + A(x + f)`` after the feed-forward ``f`` of every block, taskmix's
  ``placement: sum``: both adapter sides compute the same function with the same shapes.

The HF sides get the same examples as the packed batches hold, batched as ``Seq2SeqTrainer`` +
``DataCollatorForSeq2Seq`` do: each batch padded to its longest example (labels with -100,
``decoder_input_ids`` from the labels), as many examples per step as use the packed batch's
token budget (rows x (input + target length) slots); their step is ``Trainer``'s: mean loss,
backward, clip to 1.0, optimizer step. The model keeps the preset's dropout (0.1) on every side;
adapters and LoRA add none. All sides start from one random-init T5.1.1 (taskmix builds it and
writes it with ``save_hf_checkpoint``; taskmix sides read it with ``load_hf_checkpoint``, HF sides
with ``from_pretrained``). The optimizer is taskmix's ``make_optimizer`` (Adafactor as T5 sets
it, by default) on the trainable parameters of each side.

The ``adapters`` library (1.3.0) needs ``transformers~=4.57.6``, older than taskmix's; the bench
keeps a second environment for it, ``.bench-venvs/adapters/`` under the repository root (made on
the first run with the ``torch`` this process runs, then reused; ``--skip-adapters-lib`` skips
that side). So each side runs in a process of its own (the ``adapters`` side in that
environment, the others in this one), all with the memory settings of taskmix's trainer (malloc
keeps freed memory, torch's allocator asks for huge pages) and the same number of threads. The
processes take turns, one step at a time while the others wait on a pipe: in each round every
side runs the same timed batches once, and the next step is always that of the side that has
done the smallest share of the round's examples, so that all sides go through the examples
together and the load of the shared machine hits them alike. Warm-up steps come first, untimed.
Tokens/s is non-padding (input + target) tokens per second of training steps (medians over
rounds); each ratio is the median over rounds of the two sides' times in that round.

Memory, per side: the peak resident set (``ru_maxrss``) of the side's process at the end, and
that peak less the process's resident set after its imports (libraries), i.e. what the model,
optimizer and steps took at their peak; optimizer-state bytes are the tensors the optimizer holds.

    PYTHONPATH=src .venv/bin/python bench/peft.py [--threads 2] [--preset small] [--rounds 4]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import venv
from pathlib import Path

# This file is named peft.py: its folder on sys.path would shadow the ``peft`` package (and make
# transformers believe peft is installed), so it goes before anything else is imported.
_HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [p for p in sys.path if os.path.abspath(p or os.curdir) != _HERE]

ROOT = Path(_HERE).parent
SRC = ROOT / "src"
VENV = ROOT / ".bench-venvs" / "adapters"
ADAPTERS_REQUIREMENTS = ("adapters==1.3.0", "transformers~=4.57.6")
SIDES = ("taskmix-full", "taskmix-adapter", "taskmix-lora", "peft-lora", "adapters-lib")
TASKMIX_SIDES = SIDES[:3]


def _load_file(name: str, path: Path):
    """A module from a file (taskmix modules that need only the standard library and torch, in
    the ``adapters`` environment where taskmix's dependencies are not installed)."""
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def _maxrss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


# --- a side's process ---------------------------------------------------------------------
def child(side: str, workdir: Path) -> None:
    """Build ``side`` from ``workdir`` (settings, checkpoint, batches), run its warm-up steps,
    then serve the parent over stdin/stdout: ``round`` runs the timed batches once and answers
    the seconds; ``stats`` answers the memory and optimizer-state figures; EOF ends."""
    settings = json.loads((workdir / "settings.json").read_text())
    allocator = _load_file("_taskmix_allocator", SRC / "taskmix/training/allocator.py")
    allocator.use_huge_pages()  # before torch allocates, as the ``taskmix`` command does
    allocator.keep_freed_memory()
    protocol, sys.stdout = sys.stdout, sys.stderr  # libraries' prints must not reach the pipe

    import torch

    torch.set_num_threads(settings["threads"])
    torch.manual_seed(0)
    build = _taskmix_side if side in TASKMIX_SIDES else _hf_side
    baseline: list[float] = []  # the resident set once the side's modules are imported
    model, optimizer, step, warm, timed, versions = build(
        side, workdir, settings, lambda: baseline.append(_rss_mb())
    )
    for batch in warm:
        step(batch)
    trainable = {id(p): p.numel() for p in model.parameters() if p.requires_grad}
    total = {id(p): p.numel() for p in model.parameters()}
    _answer(
        protocol,
        {
            "trainable": sum(trainable.values()),
            "total": sum(total.values()),
            "versions": versions,
            "steps": len(timed),
            "threads": torch.get_num_threads(),
        },
    )
    done = 0
    for line in sys.stdin:
        command = line.strip()
        if command == "step":  # the next timed batch (they repeat, round after round)
            start = time.perf_counter()
            step(timed[done % len(timed)])
            done += 1
            _answer(protocol, {"seconds": time.perf_counter() - start})
        elif command == "stats":
            state = [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t)]
            _answer(
                protocol,
                {
                    "peak_mb": _maxrss_mb(),
                    "baseline_mb": baseline[0],
                    "optimizer_bytes": sum(t.numel() * t.element_size() for t in state),
                },
            )


def _answer(protocol, message: dict) -> None:
    protocol.write(json.dumps(message) + "\n")
    protocol.flush()


def _taskmix_side(side: str, workdir: Path, settings: dict, imported):
    import numpy as np

    from taskmix.data.feature_converters import to_torch
    from taskmix.models.adapters import AdapterConfig
    from taskmix.models.hf import load_hf_checkpoint
    from taskmix.models.lora import LoRAConfig
    from taskmix.training.adapting import adapter_parameter_names, apply_adapter
    from taskmix.training.optim import make_optimizer
    from taskmix.training.trainable import select_trainable

    throughput = _load_file("_train_throughput", Path(_HERE) / "train_throughput.py")
    imported()
    model = load_hf_checkpoint(workdir / "checkpoint").train()
    adapter = None
    if side == "taskmix-adapter":
        adapter = AdapterConfig(
            dim=settings["adapter_dim"],
            activation="relu",
            placement="sum",
            train_layer_norms=False,
        )
    elif side == "taskmix-lora":
        adapter = LoRAConfig(
            rank=settings["lora_rank"],
            alpha=settings["lora_alpha"],
            dropout=0.0,
            target_modules=["q", "v"],
        )
    apply_adapter(model, adapter)
    names = None if adapter is None else set(adapter_parameter_names(model, adapter))
    params = select_trainable(
        model, None, None if names is None else (lambda name, _param: name in names)
    )
    optimizer = make_optimizer(settings["optimizer"], params, lr=settings["lr"])
    step = throughput.taskmix_step(model, optimizer)
    with np.load(workdir / "packed.npz") as data:
        batches = [
            to_torch({k.split("/", 1)[1]: data[k] for k in data.files if k.startswith(f"{i}/")})
            for i in range(settings["packed_steps"])
        ]
    warm = settings["packed_warmup"]
    return model, optimizer, step, batches[:warm], batches[warm:], {}


def _hf_side(side: str, workdir: Path, settings: dict, imported):
    import torch
    import transformers
    from safetensors.torch import load_file
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging

    logging.set_verbosity_error()
    if side == "peft-lora":
        import peft
    else:
        import adapters
    optim = _load_file("_taskmix_optim", SRC / "taskmix/training/optim.py")
    imported()
    model = T5ForConditionalGeneration.from_pretrained(workdir / "checkpoint").train()
    if any(p.dtype != torch.float32 for p in model.parameters()):
        raise SystemExit(f"{side}: the HF model did not load in float32")
    versions = {"transformers": transformers.__version__}
    if side == "peft-lora":
        config = peft.LoraConfig(
            task_type="SEQ_2_SEQ_LM",
            r=settings["lora_rank"],
            lora_alpha=settings["lora_alpha"],
            target_modules=["q", "v"],
            lora_dropout=0.0,
        )
        model = peft.get_peft_model(model, config)
        versions["peft"] = peft.__version__
    else:
        adapters.init(model)
        config = adapters.SeqBnConfig(
            reduction_factor=settings["reduction_factor"], non_linearity="relu"
        )
        model.add_adapter("bench", config=config)
        model.train_adapter("bench")  # freezes the rest; the model stays in training mode
        versions["adapters"] = adapters.__version__
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = optim.make_optimizer(settings["optimizer"], params, lr=settings["lr"])

    def step(batch: dict) -> None:
        """``Trainer.training_step`` + the optimizer step: mean loss, backward, clip 1.0."""
        model(**batch).loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    tensors = load_file(str(workdir / "padded.safetensors"))
    batches = [
        {k.split(".", 1)[1]: v for k, v in tensors.items() if k.startswith(f"{i}.")}
        for i in range(settings["padded_steps"])
    ]
    warm = settings["padded_warmup"]
    return model, optimizer, step, batches[:warm], batches[warm:], versions


# --- the adapters library's environment ---------------------------------------------------
def adapters_python(torch_version: str) -> Path:
    """The Python of ``.bench-venvs/adapters`` (created, or updated, if it does not hold
    ``ADAPTERS_REQUIREMENTS`` with this torch). torch goes in first, pinned to this process's
    version (a CPU build from the local wheel here: an unpinned torch would pull a CUDA build of
    several GB), and stays pinned by a constraint while the rest is installed."""
    python = VENV / "bin" / "python"
    stamp = VENV / ".bench-stamp"
    wanted = json.dumps({"torch": torch_version, "requirements": ADAPTERS_REQUIREMENTS})
    if stamp.exists() and stamp.read_text() == wanted and python.exists():
        return python
    print(
        f"[setup] creating {VENV.relative_to(ROOT)} (once): torch=={torch_version}, "
        f"{' '.join(ADAPTERS_REQUIREMENTS)}",
        flush=True,
    )
    if not python.exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, f"torch=={torch_version}"], check=True)
    constraints = VENV / "constraints.txt"
    constraints.write_text(f"torch=={torch_version}\n")
    subprocess.run(
        [*pip, "-c", str(constraints), *ADAPTERS_REQUIREMENTS, "numpy", "safetensors"],
        check=True,
    )
    stamp.write_text(wanted)
    return python


# --- the parent ---------------------------------------------------------------------------
class Side:
    """A side's process: started with its settings, then asked for rounds and figures."""

    def __init__(self, name: str, python: Path, workdir: Path):
        self.name = name
        self.log = workdir / f"{name}.log"
        env = dict(os.environ)
        if name == "adapters-lib":
            env.pop("PYTHONPATH", None)  # nothing of this environment's packages over there
        env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_VERBOSITY="error", TOKENIZERS_PARALLELISM="0")
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [str(python), __file__, "--child", name, "--workdir", str(workdir)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
                env=env,
            )
        self.info: dict = {}

    def ready(self) -> dict:
        self.info = self._read()
        return self.info

    def ask(self, command: str) -> dict:
        self.process.stdin.write(command + "\n")
        self.process.stdin.flush()
        return self._read()

    def _read(self) -> dict:
        line = self.process.stdout.readline()
        if not line:
            self.process.wait()
            tail = self.log.read_text()[-3000:]
            raise SystemExit(f"{self.name} stopped (exit {self.process.returncode}):\n{tail}")
        return json.loads(line)

    def close(self) -> None:
        if self.process.stdin:
            self.process.stdin.close()
        self.process.wait(timeout=60)


def prepare(args, workdir: Path, throughput) -> dict:
    """Model, checkpoint, batches and settings in ``workdir``; what the report needs."""
    import numpy as np
    import torch
    from safetensors.torch import save_file
    from transformers import T5ForConditionalGeneration
    from transformers.utils import logging

    from taskmix.default_data import default_vocabulary
    from taskmix.models import build_model, preset
    from taskmix.models.hf import save_hf_checkpoint

    logging.set_verbosity_error()
    logging.disable_progress_bar()
    vocab_size = -(-default_vocabulary().vocab_size // 128) * 128
    overrides = {} if args.dropout is None else {"dropout_rate": args.dropout}
    config = preset(args.preset, version=args.version, vocab_size=vocab_size, **overrides)
    torch.manual_seed(0)
    save_hf_checkpoint(build_model(config), workdir / "checkpoint")

    steps = args.warmup + args.steps
    batches = throughput.packed_batches(
        steps, args.batch_size, args.input_length, args.target_length
    )
    warm_examples = [e for b in batches[: args.warmup] for e in throughput.unpack(b)]
    timed_examples = [e for b in batches[args.warmup :] for e in throughput.unpack(b)]
    slots = args.batch_size * (args.input_length + args.target_length)
    n_hf = args.hf_batch_size or throughput.hf_batch_size(timed_examples, slots)
    hf = T5ForConditionalGeneration.from_pretrained(workdir / "checkpoint")  # for the collator
    padded_warm = throughput.hf_collated_batches(warm_examples, n_hf, hf)
    padded_timed = throughput.hf_collated_batches(timed_examples, n_hf, hf)
    del hf
    np.savez(
        workdir / "packed.npz",
        **{f"{i}/{k}": v for i, b in enumerate(batches) for k, v in b.items()},
    )
    padded = padded_warm + padded_timed
    save_file(
        {f"{i}.{k}": v.contiguous() for i, b in enumerate(padded) for k, v in b.items()},
        str(workdir / "padded.safetensors"),
    )
    tokens = throughput.non_pad_tokens(timed_examples)
    in_batches = sum(
        int((b["encoder_input_tokens"] > 0).sum() + (b["decoder_target_tokens"] > 0).sum())
        for b in batches[args.warmup :]
    )
    in_padded = sum(
        int(b["attention_mask"].sum() + (b["labels"] != -100).sum()) for b in padded_timed
    )
    if not tokens == in_batches == in_padded:  # both kinds of batch hold exactly these tokens
        raise AssertionError(f"tokens: examples {tokens}, packed {in_batches}, padded {in_padded}")
    d_model = config.d_model
    if d_model % args.adapter_dim:
        raise SystemExit(f"--adapter-dim {args.adapter_dim} must divide d_model {d_model}")
    settings = {
        "threads": torch.get_num_threads(),
        "adapter_dim": args.adapter_dim,
        "reduction_factor": d_model // args.adapter_dim,
        "lora_rank": args.lora_rank,
        "lora_alpha": args.lora_alpha,
        "optimizer": args.optimizer,
        "lr": 1e-3,
        "packed_steps": len(batches),
        "packed_warmup": args.warmup,
        "padded_steps": len(padded),
        "padded_warmup": len(padded_warm),
    }
    (workdir / "settings.json").write_text(json.dumps(settings))
    fill_packed = tokens / (args.steps * slots)
    fill_padded = tokens / sum(b["input_ids"].numel() + b["labels"].numel() for b in padded_timed)
    return {
        "packed_sizes": [len(throughput.unpack(b)) for b in batches[args.warmup :]],
        "padded_sizes": [len(b["input_ids"]) for b in padded_timed],
        "config": config,
        "tokens": tokens,
        "examples": len(timed_examples),
        "n_hf": n_hf,
        "padded_steps": len(padded_timed),
        "fill_packed": fill_packed,
        "fill_padded": fill_padded,
        "settings": settings,
    }


def run_round(sides: list[Side], sizes: dict[str, list[int]]) -> dict[str, float]:
    """Seconds each side spends on its timed batches (one round), stepping the sides in turn so
    that all are at the same point of the example set: the next step is always that of the side
    that has done the smallest share of the round's examples. The load of a shared machine
    then hits every side alike."""
    seconds = {s.name: 0.0 for s in sides}
    done = {s.name: 0 for s in sides}  # examples stepped through this round
    steps = {s.name: 0 for s in sides}
    while True:
        waiting = [s for s in sides if steps[s.name] < len(sizes[s.name])]
        if not waiting:
            return seconds
        side = min(waiting, key=lambda s: done[s.name] / sum(sizes[s.name]))
        seconds[side.name] += side.ask("step")["seconds"]
        done[side.name] += sizes[side.name][steps[side.name]]
        steps[side.name] += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="model size (T5 preset)")
    parser.add_argument("--version", default="1.1", choices=["1.0", "1.1"])
    parser.add_argument("--steps", type=int, default=2, help="timed packed steps per round")
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--warmup", type=int, default=1, help="untimed packed steps first")
    parser.add_argument("--batch-size", type=int, default=16, help="packed rows per batch")
    parser.add_argument("--hf-batch-size", type=int, default=0, help="0: same token budget")
    parser.add_argument("--input-length", type=int, default=256)
    parser.add_argument("--target-length", type=int, default=64)
    parser.add_argument("--adapter-dim", type=int, default=64, help="bottleneck size")
    parser.add_argument("--lora-rank", type=int, default=8)
    parser.add_argument("--lora-alpha", type=float, default=16.0)
    parser.add_argument("--optimizer", default="adafactor", choices=["adafactor", "adamw"])
    parser.add_argument("--dropout", type=float, default=None, help="override the preset's 0.1")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch default)")
    parser.add_argument(
        "--skip-adapters-lib", action="store_true", help="no `adapters` side (nor its venv)"
    )
    parser.add_argument("--child", choices=SIDES, help=argparse.SUPPRESS)
    parser.add_argument("--workdir", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.workdir)
        return

    start = time.perf_counter()
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    sides = [s for s in SIDES if not (args.skip_adapters_lib and s == "adapters-lib")]
    python = {s: Path(sys.executable) for s in sides}
    if "adapters-lib" in sides:
        python["adapters-lib"] = adapters_python(torch.__version__.split("+")[0])
    throughput = _load_file("_train_throughput", Path(_HERE) / "train_throughput.py")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        setup = prepare(args, workdir, throughput)
        running = []
        try:
            for name in sides:  # one at a time: their start-up and warm-up do not overlap
                running.append(Side(name, python[name], workdir))
                running[-1].ready()
            report(args, setup, running, start, throughput)
        finally:
            for side in running:
                side.close()


def report(args, setup: dict, sides: list[Side], start: float, throughput) -> None:
    import peft
    import transformers

    config, tokens, settings = setup["config"], setup["tokens"], setup["settings"]
    by_name = {s.name: s for s in sides}
    lib = by_name.get("adapters-lib")
    lib_versions = lib.info["versions"] if lib else {}
    print(
        f"preset {args.preset} v{args.version} ({by_name['taskmix-full'].info['total'] / 1e6:.1f}M "
        f"params, vocab {config.vocab_size}, dropout {config.dropout_rate}), fp32, "
        f"{settings['threads']} threads, optimizer {args.optimizer}; torch {torch_version()}"
    )
    print(
        f"versions: transformers {transformers.__version__} + peft {peft.__version__}"
        + (
            f"; adapters {lib_versions['adapters']} on transformers "
            f"{lib_versions['transformers']} (.bench-venvs/adapters)"
            if lib
            else "; adapters library skipped"
        )
    )
    print(
        f"adapters: bottleneck {settings['adapter_dim']} (reduction factor "
        f"{settings['reduction_factor']}), ReLU, after each feed-forward (x + f + A(x + f)), "
        f"layer norms frozen on both sides (taskmix train_layer_norms: false); "
        f"LoRA: rank {args.lora_rank}, alpha {args.lora_alpha:g}, q and v, dropout 0"
    )
    print(
        f"data: {setup['examples']} examples of the default mixture, {tokens} non-pad tokens "
        f"per round; taskmix: {args.steps} steps x {args.batch_size} packed rows of "
        f"{args.input_length}+{args.target_length} (fill {setup['fill_packed']:.0%}); HF: "
        f"{setup['padded_steps']} steps x {setup['n_hf']} padded examples "
        f"(fill {setup['fill_padded']:.0%}); {args.warmup} warm-up step(s) untimed, "
        f"{args.rounds} rounds"
    )
    import torch

    from taskmix.models import cpu_linear

    peaks = throughput.matmul_peaks()  # the parent measures while the sides wait
    ours = (
        "oneDNN"
        if cpu_linear.onednn_enabled(torch.empty(0)) and cpu_linear._onednn_gains()
        else "torch.mm (MKL; oneDNN gains only with AVX-512)"
    )
    print(
        f"fp32 matmul peak, 2048^3, GFLOP/s (CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}): "
        + ", ".join(f"{name} {value / 1e9:.0f}" for name, value in peaks.items())
        + f"; taskmix's projections use {ours}, transformers' torch.mm"
    )
    times = {s.name: [] for s in sides}
    sizes = {
        s.name: setup["packed_sizes" if s.name in TASKMIX_SIDES else "padded_sizes"] for s in sides
    }
    for r in range(args.rounds):
        for name, seconds in run_round(sides, sizes).items():
            times[name].append(seconds)
        print(
            f"  round {r}: "
            + "  ".join(f"{s.name} {tokens / times[s.name][-1]:6.0f}" for s in sides)
            + " tok/s",
            flush=True,
        )
    stats = {s.name: s.ask("stats") for s in sides}
    print(
        f"{'side':16s} {'tok/s':>8s} {'s/round':>8s} {'trainable':>12s} {'optimizer state':>16s} "
        f"{'peak RSS':>9s} {'above imports':>14s}"
    )
    for side in sides:
        median = statistics.median(times[side.name])
        info, st = side.info, stats[side.name]
        print(
            f"{side.name:16s} {tokens / median:8.0f} {median:8.2f} "
            f"{info['trainable']:12,d} {st['optimizer_bytes'] / 2**20:13.2f} MB "
            f"{st['peak_mb']:6.0f} MB {st['peak_mb'] - st['baseline_mb']:11.0f} MB"
        )

    def ratio(slow: str, fast: str) -> float:
        return statistics.median(a / b for a, b in zip(times[slow], times[fast], strict=True))

    vs_full = ratio("taskmix-full", "taskmix-adapter")
    vs_full_lora = ratio("taskmix-full", "taskmix-lora")
    vs_peft = ratio("peft-lora", "taskmix-lora")
    full_state = stats["taskmix-full"]["optimizer_bytes"]
    adapter_state = stats["taskmix-adapter"]["optimizer_bytes"]
    print(
        f"taskmix adapter step vs taskmix full step: {vs_full:.2f}x tokens/s (target >= 1.4x; "
        f"LoRA: {vs_full_lora:.2f}x); optimizer state {adapter_state / 2**20:.2f} MB vs "
        f"{full_state / 2**20:.2f} MB"
    )
    vs_adapters = None
    if lib:
        vs_adapters = ratio("adapters-lib", "taskmix-adapter")
        print(f"taskmix bottleneck adapters vs adapters SeqBnConfig: {vs_adapters:.2f}x (>= 3x)")
    print(f"taskmix LoRA vs peft LoRA: {vs_peft:.2f}x (>= 3x)")
    print(f"total {time.perf_counter() - start:.0f} s")
    adapters_text = "skipped" if vs_adapters is None else f"{vs_adapters:.2f}x"
    print(f"summary: vs-full {vs_full:.2f}x, vs-adapters {adapters_text}, vs-peft {vs_peft:.2f}x")


def torch_version() -> str:
    import torch

    return torch.__version__


if __name__ == "__main__":
    main()
