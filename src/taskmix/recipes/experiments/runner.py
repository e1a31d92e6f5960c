"""Run an experiment's grid: plan (validate and write every config), train, summarize.

``plan_experiment`` checks everything a bad grid can get wrong before any run starts (unknown
grid keys, a run that starts from an unknown run, an invalid training config, a budget too
small) and writes ``DIR/configs/NAME.yaml`` for every run. ``train_runs`` trains the runs that
are not finished yet, in dependency order, with a local process pool; a finished run (its
``report.json`` at its last step) is never trained again, and an interrupted one resumes from
its checkpoint, so a killed experiment resumes by finishing its unfinished runs only. The same
configs run anywhere as ``taskmix train DIR/configs/NAME.yaml --out DIR/runs/NAME``
(``dry_run_commands``), e.g. as a Slurm array, one stage after the other; running the
experiment again then only collects the results.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import traceback
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch
import yaml

from taskmix.errors import ConfigError, TaskmixError
from taskmix.evaluation import task_evaluator
from taskmix.files import atomic_write_text
from taskmix.recipes.experiments import get_experiment
from taskmix.recipes.experiments.base import (
    Context,
    Experiment,
    Outcome,
    RunSpec,
    Settings,
    deep_merge,
    read_settings,
)
from taskmix.recipes.experiments.results import print_summary, write_results
from taskmix.training.config import load_config, parse_config
from taskmix.training.trainer import train

RUNS = "runs"
CONFIGS = "configs"


@dataclass
class Plan:
    """A validated grid: the runs in dependency order and each one's config file."""

    ctx: Context
    runs: list[RunSpec]
    stages: list[list[str]]  # run names; a stage starts from runs of earlier stages only

    def config_path(self, name: str) -> Path:
        return self.ctx.out / CONFIGS / f"{name}.yaml"

    def run_dir(self, name: str) -> Path:
        return self.ctx.out / RUNS / name


def plan_experiment(experiment: Experiment, settings: Settings, out: str | Path) -> Plan:
    """Validate the whole grid and write its configs (and ``DIR/experiment.json``); raises
    ConfigError before any run starts."""
    out = Path(out).resolve()
    unknown = sorted(set(settings.grid) - set(experiment.grid))
    if unknown:
        raise ConfigError(
            f"grid: {experiment.name} has no axis {', '.join(map(repr, unknown))}; its axes: "
            f"{', '.join(experiment.grid) or 'none'}"
        )
    record = {"experiment": experiment.name, "settings": settings.as_dict()}
    _check_same_settings(out / "experiment.json", record)
    ctx = Context(experiment, settings, out)
    runs = experiment.runs(ctx)
    stages = _stages(experiment.name, runs)
    plan = Plan(ctx, runs, stages)
    configs = {}
    for run in runs:
        config = deep_merge(ctx.base_config, run.config)
        checked = deep_merge(config, {"model": {"init_from": None}})  # may not exist yet
        try:
            parse_config(checked, source=f"{experiment.name}: run {run.name}")
        except TaskmixError as err:
            raise ConfigError(str(err)) from None
        if run.init_from:
            config["model"]["init_from"] = str(plan.run_dir(run.init_from))
        configs[run.name] = config
    atomic_write_text(out / "experiment.json", json.dumps(record, indent=2) + "\n")
    for name, config in configs.items():
        text = yaml.safe_dump(config, sort_keys=False)
        path = plan.config_path(name)
        if not path.exists() or path.read_text() != text:
            atomic_write_text(path, text)
    return plan


def _check_same_settings(path: Path, record: dict[str, Any]) -> None:
    """An experiment folder holds one experiment: resuming it with other settings would mix
    two grids in one table."""
    if not path.exists():
        return
    old = json.loads(path.read_text())
    if old != record:
        changed = [k for k, v in record["settings"].items() if old["settings"].get(k) != v]
        what = "experiment" if old["experiment"] != record["experiment"] else f"settings {changed}"
        raise ConfigError(
            f"{path.parent} holds {old['experiment']} with other {what}; use another --out or "
            "the same settings"
        )


def _stages(experiment: str, runs: list[RunSpec]) -> list[list[str]]:
    """The runs grouped so that each starts only from runs of earlier groups."""
    names = [run.name for run in runs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"{experiment}: two runs named {duplicates[0]!r}")
    parent = {run.name: run.init_from for run in runs}
    depth: dict[str, int] = {}

    def depth_of(name: str, seen: tuple[str, ...] = ()) -> int:
        if name in seen:
            raise ConfigError(f"{experiment}: runs start from each other in a cycle: {seen}")
        if name not in depth:
            source = parent[name]
            if source is not None and source not in parent:
                raise ConfigError(f"{experiment}: run {name} starts from unknown run {source!r}")
            depth[name] = 0 if source is None else depth_of(source, (*seen, name)) + 1
        return depth[name]

    for name in names:
        depth_of(name)
    return [[n for n in names if depth[n] == d] for d in range(max(depth.values(), default=-1) + 1)]


def dry_run_commands(plan: Plan) -> list[str]:
    """``taskmix train`` commands of the unfinished runs, stage by stage (a comment line
    before each stage: its runs may run in parallel once the earlier stages finished)."""
    lines = []
    for i, stage in enumerate(plan.stages, 1):
        todo = [name for name in stage if not is_finished(plan, name)]
        if todo:
            lines.append(
                f"# stage {i}: {len(todo)} runs" + (f" (after stage {i - 1})" if i > 1 else "")
            )
            lines += [
                f"taskmix train {plan.config_path(n)} --out {plan.run_dir(n)} --no-progress"
                for n in todo
            ]
    return lines


def is_finished(plan: Plan, name: str) -> bool:
    report = plan.run_dir(name) / "report.json"
    if not report.exists():
        return False
    steps = next(run.steps for run in plan.runs if run.name == name)
    return json.loads(report.read_text()).get("step", 0) >= steps


def outcome_of(plan: Plan, run: RunSpec, status: str, error: str | None = None) -> Outcome:
    run_dir = plan.run_dir(run.name)
    report = run_dir / "report.json"
    timing = run_dir / "seconds.txt"
    return Outcome(
        name=run.name,
        status=status,
        report=json.loads(report.read_text()) if status == "done" else {},
        error=error,
        seconds=float(timing.read_text()) if timing.exists() else None,
        final_loss=_final_loss(run_dir / "log.jsonl") if status == "done" else None,
        labels=run.labels,
    )


def _final_loss(log: Path, last: int = 5) -> float | None:
    """The mean training loss of the last ``last`` logged steps."""
    if not log.exists():
        return None
    losses = [r["loss"] for r in map(json.loads, log.read_text().splitlines()) if "loss" in r]
    return sum(losses[-last:]) / len(losses[-last:]) if losses else None


def train_runs(
    plan: Plan, workers: int = 1, on_event: Callable[[str], Any] = print
) -> dict[str, Outcome]:
    """Train every unfinished run (``workers`` at a time, each with its share of the cores)
    and return every run's outcome. A failing run is reported and does not stop the others;
    the runs that start from it are skipped."""
    specs = {run.name: run for run in plan.runs}
    outcomes = {n: outcome_of(plan, specs[n], "done") for n in specs if is_finished(plan, n)}
    todo = [run.name for run in plan.runs if run.name not in outcomes]
    if outcomes:
        on_event(f"{len(outcomes)} runs already finished; {len(todo)} to train")

    def finished(name: str, error: str | None) -> None:
        outcomes[name] = outcome_of(plan, specs[name], "failed" if error else "done", error)
        done = sum(o.status == "done" for o in outcomes.values())
        seconds = outcomes[name].seconds or 0.0
        state = f"failed: {error}" if error else f"done in {seconds:.0f} s"
        on_event(f"[{done}/{len(specs)}] {name}: {state}")

    def ready() -> list[str]:
        out = []
        for name in todo:
            source = specs[name].init_from
            if source is None or outcomes.get(source, Outcome("", "")).status == "done":
                out.append(name)
            elif source in outcomes:  # failed or skipped: this one cannot start
                outcomes[name] = outcome_of(
                    plan, specs[name], "skipped", f"{source} did not finish"
                )
                on_event(f"{name}: skipped ({source} did not finish)")
        return [n for n in out if n not in outcomes]

    args = {n: (str(plan.config_path(n)), str(plan.run_dir(n))) for n in specs}
    if workers <= 1:
        while pending := ready():
            for name in pending:
                todo.remove(name)
                finished(name, train_one(*args[name]))
        return _in_order(plan, outcomes)
    threads = max(1, _cores() // workers)
    context = get_context("spawn")  # no forked torch thread pools
    with ProcessPoolExecutor(
        workers, mp_context=context, initializer=_init_worker, initargs=(threads,)
    ) as pool:
        running: dict[Future, str] = {}
        while True:
            for name in ready():
                if name not in running.values():
                    todo.remove(name)
                    running[pool.submit(train_one, *args[name])] = name
            if not running:
                break
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                name = running.pop(future)
                try:
                    error = future.result()
                except Exception as err:  # the worker died (e.g. killed for memory)
                    error = f"{type(err).__name__}: {err}"
                finished(name, error)
    return _in_order(plan, outcomes)


def _in_order(plan: Plan, outcomes: dict[str, Outcome]) -> dict[str, Outcome]:
    return {run.name: outcomes[run.name] for run in plan.runs if run.name in outcomes}


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _init_worker(threads: int) -> None:
    torch.set_num_threads(threads)


def train_one(config_path: str, run_dir: str) -> str | None:
    """Train (or resume) one run as ``taskmix train`` does, its output in ``RUN/output.log``;
    returns None, or the error that stopped it (the traceback is in the log)."""
    folder = Path(run_dir)
    folder.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with (
        open(folder / "output.log", "a") as log,
        contextlib.redirect_stdout(log),
        contextlib.redirect_stderr(log),
    ):
        try:
            config = load_config(config_path)
            train(config, folder, progress=False, evaluate=task_evaluator(config))
        except Exception as err:
            traceback.print_exc()
            return f"{type(err).__name__}: {err}"
    timing = folder / "seconds.txt"  # summed over restarts
    before = float(timing.read_text()) if timing.exists() else 0.0
    atomic_write_text(timing, f"{before + time.perf_counter() - start:.3f}\n")
    return None


def settings_for(
    experiment: Experiment,
    config: str | Path | None = None,
    *,
    budget: int | None = None,
    families: list[str] | None = None,
    seed: int | None = None,
) -> Settings:
    """The settings file (optional) with the command line's values over it."""
    file = read_settings(config)
    if budget is not None and budget <= 0:
        raise ConfigError(f"--budget: expected a positive number of steps, got {budget}")
    return Settings(
        budget=budget or file.budget or experiment.default_budget,
        seed=file.seed if seed is None else seed,
        families=families or file.families,
        evals=file.evals,
        grid=file.grid,
        base=file.base,
    )


def run_experiment(
    name: str,
    out: str | Path,
    settings: Settings | None = None,
    *,
    workers: int = 1,
    dry_run: bool = False,
    plots: bool = True,
) -> dict[str, Any] | list[str]:
    """Plan, train and summarize an experiment; prints its table and returns ``results.json``'s
    content. ``dry_run``: write the configs and return the ``taskmix train`` commands instead."""
    experiment = get_experiment(name)
    plan = plan_experiment(experiment, settings or settings_for(experiment), out)
    if dry_run:
        return dry_run_commands(plan)
    print(
        f"{name}: {len(plan.runs)} runs in {len(plan.stages)} stages, budget "
        f"{plan.ctx.budget} steps, {workers} workers, folder {plan.ctx.out}",
        flush=True,
    )
    outcomes = train_runs(plan, workers)
    summary = experiment.summarize(plan.ctx, outcomes)
    paths = experiment.plot(plan.ctx, summary, plan.ctx.out) if plots else []
    result = write_results(plan.ctx, summary, outcomes, paths)
    print_summary(summary, outcomes)
    print(f"results: {plan.ctx.out / 'results.md'}")
    return result
