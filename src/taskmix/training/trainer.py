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
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

from taskmix.catalog.records import record_task_files
from taskmix.data.feature_converters import to_torch
from taskmix.data.task import stable_seed
from taskmix.errors import CheckpointError
from taskmix.training.allocator import keep_freed_memory
from taskmix.training.batches import REPORT_KINDS, BatchStream, non_pad_tokens
from taskmix.training.build import make_converter
from taskmix.training.checkpoint import (
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
from taskmix.training.distributed import Distributed
from taskmix.training.log import JsonlLog
from taskmix.training.optim import make_optimizer, make_schedule, set_lr
from taskmix.training.plan import RunPlan, plan_run
from taskmix.training.pretrained import build_model_for
from taskmix.training.scores import Evaluate, RunState, evaluate_and_track
from taskmix.yamlconf import read_yaml

# The progress bar's throughput: real input + target tokens, as bench/train_throughput.py counts.
TOKENS_LABEL = "tok/s (in+tgt)"


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """fp32 on CPU (bf16 is very slow there); bf16 autocast on GPU."""
    if precision == "fp32" or (precision == "auto" and device.type == "cpu"):
        return None
    return torch.bfloat16


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def train(
    config: TrainConfig,
    run_dir: str | Path,
    *,
    progress: bool = True,
    evaluate: Evaluate | None = None,
    accept_changed_tasks: bool = False,
) -> RunState:
    """Train (or resume) a run in ``run_dir``; returns the final state.

    Under ``torchrun`` each rank reads its own shard of every task and gradients are averaged
    by DDP; rank 0 evaluates and writes checkpoints holding every rank's data and RNG state.
    ``evaluate(model, vocabulary, step) -> {task: {metric: value}}`` is called every
    ``eval.every`` steps and at the end (``taskmix.evaluation.task_evaluator(config)`` scores
    the config's eval tasks); without it the run trains and checkpoints only.
    """
    run_dir = Path(run_dir)
    job = Distributed.from_env()
    plan = plan_run(config)  # everything a bad config can get wrong, before the folder exists
    if job.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_or_check_config(config, run_dir)
        record_task_files(run_dir, plan.task_files, accept_changes=accept_changed_tasks)
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
            if (evaluating or at_end) and evaluate is not None:
                improved = set()
                if job.is_main:
                    improved = evaluate_and_track(evaluate, model, vocabulary, state, log, write)
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
        existing = read_yaml(path) or {}
        changed = [k for k in RUN_DEFINING_KEYS if existing.get(k) != current.get(k)]
        if changed and list_checkpoints(run_dir / "checkpoints"):
            raise CheckpointError(
                f"{run_dir} holds a run with another config (differs in {changed}); "
                "use a new run folder or the same config"
            )
    atomic_write_text(path, yaml.safe_dump(current, sort_keys=False))
