"""The training loop: one readable function, explicit state, nothing hidden.

    state = (model, optimizer, batch stream, RNGs, step, best metrics, callbacks' states)

Every ``checkpoint.every`` steps, at every evaluation that improves a score named in
``checkpoint.keep_best`` (so each kept best has its checkpoint) and at the end, the state is
written atomically, followed by ``report.json``. Started again with the same config and run
folder, ``train`` resumes from the newest valid checkpoint and continues exactly as if never
stopped: same batches, same dropout masks, same losses, same data counts.

The seams later features stand on, each in its own module: which parameters train and with
which lr (``trainable``), callbacks at step boundaries (``callbacks``), the loss per task
(``task_losses``) and the CPU switches (``cpu``).
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from pydantic import BaseModel, ValidationError

from taskmix.catalog.records import record_task_files
from taskmix.data.feature_converters import TASK_FEATURES, to_torch
from taskmix.data.task import stable_seed
from taskmix.errors import CheckpointError
from taskmix.files import atomic_write_text
from taskmix.training.adapting import adapter_predicate
from taskmix.training.batches import BatchStream, non_pad_tokens
from taskmix.training.build import make_converter
from taskmix.training.callbacks import Callback, Callbacks, StepContext
from taskmix.training.checkpoint import (
    latest_valid_checkpoint,
    list_checkpoints,
    load_checkpoint,
    prune_checkpoints,
    read_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from taskmix.training.config import TrainConfig
from taskmix.training.cpu import apply_cpu_settings
from taskmix.training.distributed import Distributed
from taskmix.training.log import JsonlLog
from taskmix.training.optim import make_optimizer, make_schedule, set_lr
from taskmix.training.plan import RunPlan, plan_run
from taskmix.training.pretrained import build_model_for, init_source
from taskmix.training.report import data_counts, merge_data_counts, write_report
from taskmix.training.scores import Evaluate, RunState, evaluate_and_track
from taskmix.training.task_losses import TaskLosses
from taskmix.training.trainable import (
    Predicate,
    check_same_frozen,
    frozen_keys,
    frozen_record,
    param_groups,
    select_trainable,
)
from taskmix.training.unfreezing import GradualUnfreezing
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
    trainable: Predicate | None = None,
    callbacks: Sequence[Callback] = (),
) -> RunState:
    """Train (or resume) a run in ``run_dir``; returns the final state.

    Under ``torchrun`` each rank reads its own shard of every task and gradients are averaged
    by DDP; rank 0 evaluates and writes checkpoints holding every rank's data and RNG state.
    ``evaluate(model, vocabulary, step) -> {task: {metric: value}}`` is called every
    ``eval.every`` steps and at the end (``taskmix.evaluation.task_evaluator(config)`` scores
    the config's eval tasks); without it the run trains and checkpoints only.
    ``trainable(name, parameter) -> bool`` replaces ``model.trainable`` (the parameters not
    chosen are frozen); ``callbacks`` run at step boundaries (``training.callbacks``).
    """
    run_dir = Path(run_dir)
    job = Distributed.from_env()
    plan = plan_run(config)  # everything a bad config can get wrong, before the folder exists
    if config.optimizer.gradual_unfreezing:
        callbacks = [*callbacks, GradualUnfreezing(config.steps)]
    hooks = Callbacks(callbacks)
    if job.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        _write_or_check_config(config, run_dir)
        record_task_files(run_dir, plan.task_files, accept_changes=accept_changed_tasks)
    job.barrier()
    if config.threads:
        torch.set_num_threads(config.threads)
    cpu, restore_cpu = apply_cpu_settings(config.cpu, job.device)
    try:
        return _train(config, run_dir, job, plan, hooks, trainable, evaluate, cpu, progress)
    finally:
        restore_cpu()


def _train(
    config: TrainConfig,
    run_dir: Path,
    job: Distributed,
    plan: RunPlan,
    hooks: Callbacks,
    trainable: Predicate | None,
    evaluate: Evaluate | None,
    cpu: dict[str, bool],
    progress: bool,
) -> RunState:
    seed_everything(config.seed)  # the same initial weights on every rank
    amp_dtype = autocast_dtype(config.precision, job.device)
    checkpoints = run_dir / "checkpoints"
    latest, problems = latest_valid_checkpoint(checkpoints)
    for problem in problems if job.is_main else []:
        print(f"taskmix: warning: skipping damaged checkpoint: {problem}")
    resumed = read_state(latest) if latest is not None else None

    vocabulary = plan.vocabulary
    init_from = init_source(config, resumed)  # the exact weights model.init_from names
    model = build_model_for(config, vocabulary, init_from).to(job.device)
    if trainable is None and config.model.trainable is None:
        trainable = adapter_predicate(model, config)  # an adapter run trains its adapter
    params = select_trainable(model, config.model.trainable, trainable)
    seed_everything(stable_seed(config.seed, "rank", job.rank))  # distinct dropout per rank
    optimizer = make_optimizer(
        config.optimizer.name,
        param_groups(model, params, config.optimizer),
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
    task_names = [task.name for task in plan.mixture.tasks]  # sorted; task id = index + 1
    converter = make_converter(config, config.model.architecture, task_names=task_names)
    batches = BatchStream(stream, converter, config.data.batch_size)
    state = RunState()
    if latest is not None:
        check_same_frozen(latest, resumed.get("frozen"), frozen_keys(model, params))
        saved = load_checkpoint(latest, model, optimizer, identity=plan.identity)
        if len(saved["ranks"]) != job.world_size:
            raise CheckpointError(
                f"{latest}: saved by {len(saved['ranks'])} processes, resumed by {job.world_size}; "
                "resume with the same number of processes"
            )
        batches.load_state_dict(saved["ranks"][job.rank]["data"])
        set_rng_state(saved["ranks"][job.rank]["rng"])
        hooks.load_state_dict(saved.get("callbacks", {}))
        state = RunState(step=saved["step"], best=saved["best"], history=saved["history"])
        if job.is_main:
            print(f"taskmix: resuming from {latest} (step {state.step})")
    # what state.json says of the frozen parameters (None: the run trains them all)
    frozen = frozen_record(model, params, init_from)

    log = JsonlLog(run_dir / "log.jsonl", state.step, config.tensorboard) if job.is_main else None
    ctx = StepContext(state.step + 1, model, optimizer, config, write=_writer(log))
    hooks("on_train_start", ctx)
    forward, grad_flags = _wrap(model, job, config), _requires_grad(model)
    bar = _progress_bar(progress and job.is_main, config.steps, state.step)
    write = print if bar is None else bar.write  # tqdm.write keeps the bar intact
    tracked = set(plan.tracked)
    data = None
    task_losses = TaskLosses(task_names, job.device)
    window_tokens, window_start = 0, time.perf_counter()
    try:
        while state.step < config.steps:
            ctx.step, ctx.record = state.step + 1, {}
            hooks("on_step_start", ctx)
            if job.world_size > 1 and _requires_grad(model) != grad_flags:
                # a callback (un)froze parameters: DDP syncs the gradients it was built for
                forward, grad_flags = _wrap(model, job, config), _requires_grad(model)
            lr = schedule(state.step)
            set_lr(optimizer, lr)  # times each group's lr_scale
            model.train()
            arrays = [next(batches) for _ in range(config.grad_accum)]
            window_tokens += sum(non_pad_tokens(b) for b in arrays)
            micro = [to_torch(b, job.device) for b in arrays]
            # Every target token of the global batch weighs the same.
            weight = job.sum(sum(float(b["decoder_loss_weights"].sum()) for b in micro))
            loss_sum = accumulate_gradients(
                forward,
                micro,
                weight=weight,
                world_size=job.world_size,
                amp_dtype=amp_dtype,
                task_losses=task_losses,
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
                record.update(task_losses.flush(job))  # task_loss, task_tokens of the window
                window_tokens, window_start = 0, time.perf_counter()
                if bar is not None:
                    postfix = {"loss": f"{loss:.3f}", "lr": f"{lr:.1e}"}
                    postfix[TOKENS_LABEL] = f"{record['tokens_per_s']:.0f}"
                    bar.set_postfix(postfix, refresh=False)
            if job.is_main:
                log.write(record)
                if bar is not None:
                    bar.update(1)
            ctx.record = record
            hooks("on_step_end", ctx)

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
                    extra = {"callbacks": hooks.state_dict(), "frozen": frozen}
                    _checkpoint(config, plan, checkpoints, model, optimizer, ranks, state, extra)
                    write_report(run_dir, state, data, cpu)
                job.barrier()
    finally:
        if bar is not None:
            bar.close()
        if log is not None:
            log.close()
    if data is None and state.step >= config.steps:
        # restarted after its last checkpoint (killed before report.json was written, or
        # finished): report.json must match that checkpoint
        data = merge_data_counts(job.gather(data_counts(batches)))
        if job.is_main:
            write_report(run_dir, state, data, cpu)
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
    task_losses: TaskLosses | None = None,
) -> float:
    """Forward and backward over one step's micro-batches; returns their summed loss.

    Each loss sum is divided by ``weight``, the target tokens of the whole step on all ranks
    (and multiplied by ``world_size``, as DDP averages gradients over ranks), so k
    micro-batches of n rows give the gradient of one batch of k·n rows. Task id features go to
    ``task_losses`` (summed per task), not to the model.
    """
    loss_sum = 0.0
    for batch in micro:
        inputs = {k: v for k, v in batch.items() if k not in TASK_FEATURES}
        device_type = batch["decoder_target_tokens"].device.type
        with torch.autocast(device_type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = forward(**inputs)
        (out.loss_sum * world_size / max(weight, 1.0)).backward()
        loss_sum += float(out.loss_sum.detach())
        if task_losses is not None and "decoder_task_ids" in batch and out.token_losses is not None:
            task_ids, weights = batch["decoder_task_ids"], batch["decoder_loss_weights"]
            task_losses.add(task_ids, out.token_losses, weights)
    return loss_sum


def _wrap(model: torch.nn.Module, job: Distributed, config: TrainConfig) -> torch.nn.Module:
    """What the loop calls forward on: the model, under DDP with several ranks, compiled if
    ``compile``. DDP registers the parameters that require gradients when it is built."""
    forward = model
    if job.world_size > 1:
        forward = torch.nn.parallel.DistributedDataParallel(model)
    if config.compile:
        forward = torch.compile(forward)
    return forward


def _requires_grad(model: torch.nn.Module) -> tuple[bool, ...]:
    return tuple(p.requires_grad for p in model.parameters())


def _writer(log: JsonlLog | None):
    """``ctx.log``'s writer: the run's log on rank 0, nothing elsewhere."""
    return log.write if log is not None else lambda record: None


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
    extra: dict[str, Any],
) -> None:
    frozen = extra.get("frozen")
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
            **extra,  # callbacks' states; frozen parameters (trainable.frozen_record)
        },
        # frozen tensors that init_from rebuilds are not written again at every checkpoint
        exclude=frozen["keys"] if frozen and frozen["init_from"] else (),
    )
    protected = {f"step-{state.best[m]['step']:08d}" for m in plan.tracked if m in state.best}
    prune_checkpoints(directory, keep_last=config.checkpoint.keep_last, protected=protected)


def _with_defaults(config: TrainConfig, key: str, existing: dict[str, Any]) -> Any:
    """``existing[key]`` with the defaults of keys added since it was written (a run folder
    from before ``model.trainable`` resumes as it was)."""
    value = existing.get(key)
    section = getattr(config, key)
    if isinstance(section, BaseModel) and isinstance(value, dict):
        try:
            return type(section).model_validate(value).model_dump(mode="json")
        except ValidationError:
            return value
    return value


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
        changed = [
            k for k in RUN_DEFINING_KEYS if _with_defaults(config, k, existing) != current[k]
        ]
        if changed and list_checkpoints(run_dir / "checkpoints"):
            raise CheckpointError(
                f"{run_dir} holds a run with another config (differs in {changed}); "
                "use a new run folder or the same config"
            )
    atomic_write_text(path, yaml.safe_dump(current, sort_keys=False))
