"""The training loop: one readable function, explicit state, nothing hidden.

    state = (model, optimizer, batch stream, RNGs, step, best metrics)

Every ``checkpoint.every`` steps, at every evaluation that improves a score named in
``checkpoint.keep_best`` (so each kept best has its checkpoint) and at the end, the state is
written atomically, followed by ``report.json``. Started again with the same config and run
folder, ``train`` resumes from the newest valid checkpoint and continues exactly as if never
stopped: same batches, same dropout masks, same losses, same data counts.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from taskmix.data.feature_converters import (
    DecoderOnlyFeatureConverter,
    EncDecFeatureConverter,
    FeatureConverter,
    PrefixLMFeatureConverter,
    to_torch,
)
from taskmix.data.task import stable_seed
from taskmix.data.vocabulary import Vocabulary
from taskmix.errors import ConfigError
from taskmix.training.allocator import keep_freed_memory
from taskmix.training.batches import REPORT_KINDS, BatchStream, non_pad_tokens
from taskmix.training.checkpoint import (
    CheckpointError,
    atomic_write_text,
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from taskmix.training.config import TrainConfig
from taskmix.training.optim import make_optimizer, make_schedule, set_lr
from taskmix.training.plan import (  # noqa: F401 - load_vocabulary, resolve_mixture: public here too
    RunPlan,
    load_vocabulary,
    locate_pretrained,
    model_config,
    plan_run,
    resolve_mixture,
)

# The progress bar's throughput: real input + target tokens, as bench/train_throughput.py counts.
TOKENS_LABEL = "tok/s (in+tgt)"


@dataclass
class RunState:
    """What the loop carries between steps besides the model and optimizer."""

    step: int = 0
    best: dict[str, dict[str, Any]] = field(default_factory=dict)  # metric -> {value, checkpoint}
    history: list[dict[str, Any]] = field(default_factory=list)  # evaluation results


def pick_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """fp32 on CPU (bf16 is very slow there); bf16 autocast on GPU."""
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return None
    return torch.bfloat16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def make_converter(config: TrainConfig, architecture: str) -> FeatureConverter:
    data = config.data
    if architecture in ("encoder_decoder", "shared_encoder_decoder"):
        return EncDecFeatureConverter(
            data.input_length, data.target_length, pack=data.pack, overflow=data.overflow
        )
    length = data.input_length + data.target_length
    if architecture == "prefix_lm":
        return PrefixLMFeatureConverter(length, pack=data.pack, overflow=data.overflow)
    return DecoderOnlyFeatureConverter(length, pack=data.pack, overflow=data.overflow)


def build_model_for(config: TrainConfig, vocabulary: Vocabulary) -> torch.nn.Module:
    """A fresh model of the configured preset, or the weights named by ``model.init_from``."""
    from taskmix.models import build_model

    if config.model.init_from:
        model = load_pretrained(config.model.init_from)
        model.set_dropout(config.model.dropout_rate)
        if model.config.vocab_size < vocabulary.vocab_size:
            raise ConfigError(
                f"model.init_from: the checkpoint's vocabulary has {model.config.vocab_size} ids, "
                f"the configured vocabulary needs {vocabulary.vocab_size}"
            )
        return model
    return build_model(model_config(config, vocabulary))


def load_pretrained(path: str | Path) -> torch.nn.Module:
    """Weights to start from: a taskmix run folder (its last checkpoint), one of its checkpoint
    folders, or a HF T5 folder (``plan.locate_pretrained``)."""
    from taskmix.training.runs import load_run

    run_dir, which = locate_pretrained(Path(path))
    if which is None:
        from taskmix.models.hf import load_hf_checkpoint

        return load_hf_checkpoint(run_dir)
    return load_run(run_dir, which)[0]


class JsonlLog:
    """Append-only metrics log. On resume, lines past the checkpoint's step are dropped first,
    so the log reads as one uninterrupted run. Optionally mirrored to TensorBoard."""

    def __init__(self, path: Path, resume_step: int, tensorboard: bool = False):
        self.path = path
        self.tensorboard = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ConfigError(
                    "tensorboard: true needs the tensorboard package (pip install 'taskmix[tensorboard]')"
                ) from None
            self.tensorboard = SummaryWriter(
                str(path.parent / "tensorboard"), purge_step=resume_step + 1
            )
        if path.exists():
            kept = [
                line
                for line in path.read_text().splitlines()
                if line.strip() and json.loads(line).get("step", 0) <= resume_step
            ]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.file = open(path, "a")  # noqa: SIM115 - closed in close()

    def write(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            step = record["step"]
            for key, value in record.items():
                if key != "step" and isinstance(value, int | float):
                    self.tensorboard.add_scalar(
                        f"train/{key}" if key != "average" else "eval/average", value, step
                    )
            for task, metrics in record.get("eval", {}).items():
                for metric, value in metrics.items():
                    self.tensorboard.add_scalar(f"eval/{task}/{metric}", value, step)

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()


@dataclass
class Distributed:
    """This process's place in a ``torchrun`` job (rank 0 of 1 when run plainly)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = field(default_factory=pick_device)

    @classmethod
    def from_env(cls) -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        if world_size == 1:
            return cls()
        import torch.distributed as dist

        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        if torch.cuda.is_available():
            torch.cuda.set_device(local_rank)
            device = torch.device("cuda", local_rank)
        else:
            device = torch.device("cpu")
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(rank=dist.get_rank(), world_size=world_size, device=device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def sum(self, value: float) -> float:
        if self.world_size == 1:
            return value
        import torch.distributed as dist

        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(tensor)
        return float(tensor.item())

    def gather(self, obj: Any) -> list[Any]:
        if self.world_size == 1:
            return [obj]
        import torch.distributed as dist

        out: list[Any] = [None] * self.world_size
        dist.all_gather_object(out, obj)
        return out

    def barrier(self) -> None:
        if self.world_size > 1:
            import torch.distributed as dist

            dist.barrier()


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    evaluate_fn=None,
) -> RunState:
    """Train (or resume) a run in ``run_dir``; returns the final state.

    Under ``torchrun`` each rank reads its own shard of every task and gradients are averaged
    by DDP; rank 0 evaluates and writes checkpoints holding every rank's data and RNG state.
    ``evaluate_fn(model, vocabulary, step) -> {task: {metric: value}}`` is called every
    ``eval.every`` steps and at the end; by default the eval tasks are scored.
    """
    run_dir = Path(run_dir)
    job = Distributed.from_env()
    plan = plan_run(config)  # everything a bad config can get wrong, before the folder exists
    if job.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_or_check_config(config, run_dir)
    job.barrier()
    if config.threads:
        torch.set_num_threads(config.threads)
    seed_everything(config.seed)  # the same initial weights on every rank
    amp_dtype = autocast_dtype(config.precision, job.device)
    if job.device.type == "cpu":
        keep_freed_memory()  # activations reuse their memory across steps (see allocator.py)

    vocabulary = plan.vocabulary
    model = build_model_for(config, vocabulary).to(job.device)
    seed_everything(stable_seed(config.seed, "rank", job.rank))  # distinct dropout per rank
    optimizer = make_optimizer(
        config.optimizer.name,
        model.parameters(),
        lr=config.optimizer.lr,
        weight_decay=config.optimizer.weight_decay,
    )
    schedule = make_schedule(
        config.optimizer.schedule,
        lr=config.optimizer.lr,
        warmup_steps=config.optimizer.warmup_steps,
    )
    stream = plan.mixture.get_stream(
        config.data.split,
        seed=config.seed,
        shard_index=job.rank,
        num_shards=job.world_size,
        sequence_length={"inputs": config.data.input_length, "targets": config.data.target_length},
        vocabulary=vocabulary if config.vocabulary != "default" else None,
    )
    batches = BatchStream(
        stream, make_converter(config, config.model.architecture), config.data.batch_size
    )
    if evaluate_fn is None:
        evaluate_fn = _default_evaluator(config, plan.eval_tasks)

    state = RunState()
    checkpoints = run_dir / "checkpoints"
    latest, problems = latest_valid_checkpoint(checkpoints)
    for problem in problems if job.is_main else []:
        print(f"taskmix: warning: skipping damaged checkpoint: {problem}")
    if latest is not None:
        saved = load_checkpoint(latest, model, optimizer, identity=plan.identity)
        if len(saved["ranks"]) != job.world_size:
            raise CheckpointError(
                f"{latest}: saved by {len(saved['ranks'])} processes, resumed by {job.world_size}; "
                "resume with the same number of processes"
            )
        batches.load_state_dict(saved["ranks"][job.rank]["data"])
        set_rng_state(saved["ranks"][job.rank]["rng"])
        state = RunState(step=saved["step"], best=saved["best"], history=saved["history"])
        if job.is_main:
            print(f"taskmix: resuming from {latest} (step {state.step})")

    forward = model
    if job.world_size > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        forward = torch.compile(forward)
    log = JsonlLog(run_dir / "log.jsonl", state.step, config.tensorboard) if job.is_main else None
    bar = _progress_bar(progress and job.is_main, config.steps, state.step)
    write = print if bar is None else bar.write  # tqdm.write keeps the bar intact
    tracked = set(plan.tracked)
    data = None
    window_tokens, window_start = 0, time.perf_counter()
    try:
        while state.step < config.steps:
            lr = schedule(state.step)
            set_lr(optimizer, lr)
            model.train()
            arrays = [next(batches) for _ in range(config.grad_accum)]
            window_tokens += sum(non_pad_tokens(b) for b in arrays)
            micro = [to_torch(b, job.device) for b in arrays]
            # Every target token of the global batch weighs the same.
            weight = job.sum(sum(float(b["decoder_loss_weights"].sum()) for b in micro))
            loss_sum = accumulate_gradients(
                forward, micro, weight=weight, world_size=job.world_size, amp_dtype=amp_dtype
            )
            grad_norm = _clip(model, config.optimizer.clip_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            state.step += 1
            loss = job.sum(loss_sum) / max(weight, 1.0)
            if not math.isfinite(loss):
                raise FloatingPointError(f"loss became {loss} at step {state.step}")
            at_end = state.step == config.steps
            record = {"step": state.step, "loss": loss, "lr": lr, "grad_norm": grad_norm}
            if state.step % config.log_every == 0 or at_end:
                elapsed = time.perf_counter() - window_start
                record["tokens_per_s"] = job.sum(window_tokens) / max(elapsed, 1e-9)
                window_tokens, window_start = 0, time.perf_counter()
                if bar is not None:
                    postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.1e}"}
                    postfix[TOKENS_LABEL] = f"{record['tokens_per_s']:.0f}"
                    bar.set_postfix(postfix, refresh=False)
            if job.is_main:
                log.write(record)
                if bar is not None:
                    bar.update(1)

            evaluating = bool(config.eval.every) and state.step % config.eval.every == 0
            new_best = False
            if evaluating or at_end:
                improved = set()
                if job.is_main:
                    improved = _evaluate(evaluate_fn, model, vocabulary, state, log, write)
                # Every rank takes part in a checkpoint, so every rank must learn of a new best.
                new_best = job.sum(float(bool(improved & tracked))) > 0
            checkpointing = state.step % config.checkpoint.every == 0 or at_end or new_best
            if evaluating or checkpointing:
                data = merge_data_counts(job.gather(data_counts(batches)))
                if job.is_main:
                    log.write({"step": state.step, "data": data["totals"]})
            if checkpointing:
                ranks = job.gather({"data": batches.state_dict(), "rng": rng_state()})
                if job.is_main:
                    _checkpoint(config, plan, checkpoints, model, optimizer, ranks, state)
                    _write_report(run_dir, state, data)
                job.barrier()
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    if job.is_main and data is not None and any(data["totals"].values()):
        totals = data["totals"]
        print(
            f"taskmix: warning: the data pipeline truncated {totals['truncated']}, dropped "
            f"{totals['dropped']} and skipped {totals['skipped']} examples "
            f"(by task and reason in {run_dir / 'report.json'})"
        )
    return state


def accumulate_gradients(
    forward: torch.nn.Module,
    micro: list[dict[str, torch.Tensor]],
    *,
    weight: float,
    world_size: int = 1,
    amp_dtype: torch.dtype | None = None,
) -> float:
    """Forward and backward over one step's micro-batches; returns their summed loss.

    Each loss sum is divided by ``weight``, the target tokens of the whole step on all ranks
    (and multiplied by ``world_size``, as DDP averages gradients over ranks), so k
    micro-batches of n rows give the gradient of one batch of k·n rows.
    """
    loss_sum = 0.0
    for batch in micro:
        device_type = batch["decoder_target_tokens"].device.type
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = forward(**batch)
        (out.loss_sum * world_size / max(weight, 1.0)).backward()
        loss_sum += float(out.loss_sum.detach())
    return loss_sum


def _progress_bar(enabled: bool, total: int, initial: int):
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, initial=initial, unit="step", dynamic_ncols=True)


def _clip(model: torch.nn.Module, clip_norm: float | None) -> float:
    params = [p for p in model.parameters() if p.grad is not None]
    if clip_norm is None:
        return float(torch.norm(torch.stack([p.grad.norm() for p in params]))) if params else 0.0
    return float(torch.nn.utils.clip_grad_norm_(params, clip_norm, foreach=True))


def _evaluate(evaluate_fn, model, vocabulary, state: RunState, log: JsonlLog, write) -> set[str]:
    """Score the tasks, print one table, update the bests; returns the score names that
    improved. RNG states are put back so evaluating never changes training."""
    saved = rng_state()
    model.eval()
    results = evaluate_fn(model, vocabulary, state.step)
    set_rng_state(saved)
    if not results:
        return set()
    scores = score_names(results)
    state.history.append({"step": state.step, "results": results, "average": scores["average"]})
    log.write({"step": state.step, "eval": results, "average": scores["average"]})
    write(format_eval_table(state.step, results, scores))
    improved = set()
    for name, value in scores.items():
        best = state.best.get(name)
        if best is None or value > best["value"]:
            state.best[name] = {"value": value, "step": state.step}
            improved.add(name)
    return improved


def score_names(results: dict[str, dict[str, float]]) -> dict[str, float]:
    """Every score a best is kept for: ``task/metric``, ``task`` (the mean of its metrics) and
    ``average`` (the mean over tasks of those means)."""
    scores = {
        f"{task}/{metric}": value
        for task, metrics in results.items()
        for metric, value in metrics.items()
    }
    per_task = {task: float(np.mean(list(m.values()))) for task, m in results.items()}
    scores.update(per_task)
    scores["average"] = float(np.mean(list(per_task.values())))
    return scores


def format_eval_table(
    step: int, results: dict[str, dict[str, float]], scores: dict[str, float]
) -> str:
    """A compact table: one line per task with its mean score and each metric."""
    width = max(len("task"), *(len(task) for task in results))
    lines = [
        f"eval at step {step}: average {scores['average']:.1f}",
        f"  {'task':<{width}}  score  metrics",
    ]
    for task, metrics in results.items():
        values = "  ".join(f"{metric} {value:.1f}" for metric, value in metrics.items())
        lines.append(f"  {task:<{width}}  {scores[task]:5.1f}  {values}")
    return "\n".join(lines)


def _checkpoint(
    config: TrainConfig,
    plan: RunPlan,
    directory: Path,
    model,
    optimizer,
    ranks: list[dict[str, Any]],
    state: RunState,
) -> None:
    save_checkpoint(
        directory,
        state.step,
        model,
        optimizer,
        {
            "ranks": ranks,
            "best": state.best,
            "history": state.history,
            "identity": plan.identity,  # refused on resume / init_from / eval if it differs
            "model_config": model.config.to_dict(),  # the exact shape, for load_run
        },
    )
    protected = {f"step-{state.best[m]['step']:08d}" for m in plan.tracked if m in state.best}
    prune_checkpoints(directory, keep_last=config.checkpoint.keep_last, protected=protected)


def data_counts(batches: BatchStream) -> dict[str, dict[str, dict[str, int]]]:
    """``{source: {kind: {reason: count}}}`` of what this rank's data pipeline truncated,
    dropped or skipped so far (sources: ``packing`` and each task)."""
    return {
        source: {kind: dict(getattr(report, kind)) for kind in REPORT_KINDS}
        for source, report in batches.reports().items()
    }


def merge_data_counts(per_rank: list[dict[str, dict[str, dict[str, int]]]]) -> dict[str, Any]:
    """The ranks' counts summed: ``totals`` per kind, and ``sources`` with any count."""
    sources: dict[str, dict[str, dict[str, int]]] = {}
    for counts in per_rank:
        for source, kinds in counts.items():
            merged = sources.setdefault(source, {kind: {} for kind in REPORT_KINDS})
            for kind, reasons in kinds.items():
                for reason, n in reasons.items():
                    merged[kind][reason] = merged[kind].get(reason, 0) + n
    totals = {
        kind: sum(sum(kinds[kind].values()) for kinds in sources.values()) for kind in REPORT_KINDS
    }
    nonzero = {
        source: {kind: reasons for kind, reasons in kinds.items() if reasons}
        for source, kinds in sources.items()
        if any(kinds.values())
    }
    return {"totals": totals, "sources": nonzero}


def _write_report(run_dir: Path, state: RunState, data: dict[str, Any]) -> None:
    """RUN_DIR/report.json, rewritten with every checkpoint so it matches the newest one: the
    last evaluation, the best score and step of every task/metric, and the data counts."""
    kept = {p.name for p in list_checkpoints(run_dir / "checkpoints")}
    best = {}
    for name, entry in sorted(state.best.items()):
        folder = f"step-{entry['step']:08d}"
        best[name] = {**entry, "checkpoint": f"checkpoints/{folder}" if folder in kept else None}
    report = {
        "step": state.step,
        "final": state.history[-1] if state.history else None,
        "best": best,
        "data": data,
    }
    atomic_write_text(run_dir / "report.json", json.dumps(report, indent=2) + "\n")


# Keys that decide what a run computes; the others (steps, eval, checkpoint, logging) may change
# between restarts, e.g. to train a run for longer.
RUN_DEFINING_KEYS = ("seed", "grad_accum", "vocabulary", "model", "data", "optimizer")


def _write_or_check_config(config: TrainConfig, run_dir: Path) -> None:
    """A run folder belongs to one run: resuming with another would silently mix two runs.
    A folder without checkpoints holds no progress yet, so another config may take it."""
    path = run_dir / "config.yaml"
    current = config.model_dump(mode="json")
    if path.exists():
        existing = yaml.safe_load(path.read_text()) or {}
        changed = [k for k in RUN_DEFINING_KEYS if existing.get(k) != current.get(k)]
        if changed and list_checkpoints(run_dir / "checkpoints"):
            raise CheckpointError(
                f"{run_dir} holds a run with another config (differs in {changed}); "
                "use a new run folder or the same config"
            )
    atomic_write_text(path, yaml.safe_dump(current, sort_keys=False))


def _default_evaluator(config: TrainConfig, tasks: list[str]):
    from taskmix.evaluation.evaluator import evaluate_tasks

    def evaluate(model, vocabulary, step):
        return evaluate_tasks(
            model,
            tasks,
            vocabulary=vocabulary if config.vocabulary != "default" else None,
            split=config.eval.split,
            max_examples=config.eval.max_examples,
            batch_size=config.eval.batch_size,
            max_decode_length=config.eval.max_decode_length,
            input_length=config.data.input_length,
            rank_classification=config.eval.rank_classification,
        )

    return evaluate
