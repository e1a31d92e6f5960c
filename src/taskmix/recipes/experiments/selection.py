"""ExT5's mixture selection and self-supervision studies (ExT5 §3, Figs. 4-5).

Every study pre-trains a model per arm and fine-tunes each pre-trained model on tasks kept out
of every pre-training mixture (``finetune``; default the two out-of-mixture default tasks), so
the arms are compared as ExT5 compares them: by what the pre-training is worth downstream. The
table gives the fine-tuned held-out scores (each task at its best evaluation).

- ``mixture``: span corruption alone ("vanilla") vs span corruption + all supervised tasks vs
  + the "best-effort" families (positive mean transfer in a ``transfer-matrix`` result, grid key
  ``matrix``: the path of its ``transfer_matrix.json``; without one this arm is left out) vs +
  a random subset of as many tasks (seeded). ExT5 (SuperGLUE): vanilla 76.1, best-effort 48 tasks
  76.4, random 55 tasks 77.0, all 107 tasks 79.9: curating by the matrix does not beat all tasks.
- ``ratio``: R span-corruption examples per supervised example (R = 0: no self-supervision).
  ExT5 (Fig. 4): R = 2 best; R = 0 clearly worse: self-supervision stays essential.
- ``task-scaling``: random 25/50/75/100% of the tasks (nested subsets of one seeded
  permutation) at two batch sizes, same steps. ExT5 (Fig. 5): more tasks help, and larger
  batches help more.
- ``pre-finetuning``: equal steps split two ways: span corruption then continued training on
  the supervised mixture (pre-finetuning, ``init_from`` the span-corruption run), vs the same
  total steps of multi-task pre-training (span corruption + supervised mixed from the start).
  ExT5 (SuperGLUE): multi-task pre-training 79.9 beats pre-finetuning 78.1 (with more compute).

Runs shared by studies (e.g. all tasks at the default R and batch size) are trained once.
The best-effort families must be known when the grid is planned, so the transfer matrix is a
separate experiment whose JSON this one reads, not a stage of it.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path
from typing import Any

from taskmix.default_data import (
    DEFAULT_CAP,
    SPAN_CORRUPTION_INPUT_LENGTH,
    SPAN_CORRUPTION_TASK,
)
from taskmix.errors import ConfigError
from taskmix.objectives.span_corruption import random_spans_helper
from taskmix.recipes.experiments.base import (
    Context,
    Experiment,
    Outcome,
    RunSpec,
    Summary,
    mean,
)
from taskmix.recipes.experiments.results import bar_plot

STUDIES = ("mixture", "ratio", "task-scaling", "pre-finetuning")
FINDINGS = {
    "mixture": (
        "ExT5 (SuperGLUE): vanilla 76.1 < best-effort families 76.4 < random 55 tasks 77.0 < all "
        "107 tasks 79.9: the transfer matrix does not pick a better mixture than all tasks."
    ),
    "ratio": "ExT5 (Fig. 4): R = 2 is best; R = 0 (no span corruption) is clearly worse.",
    "task-scaling": (
        "ExT5 (Fig. 5): more tasks help, mainly at the larger batch size; larger batches help."
    ),
    "pre-finetuning": (
        "ExT5 (SuperGLUE): multi-task pre-training (79.9) beats pre-finetuning a T5 checkpoint "
        "(78.1, at more compute) and vanilla (76.1)."
    ),
}


def read_best_effort(path: str | Path) -> tuple[list[str], str]:
    """The best-effort families of a transfer-matrix result (its JSON file or folder) and how
    they were chosen: those with positive mean transfer onto the others, as ExT5 chose; when
    none has, the better half by that mean (``ranked``), so the arm still exists."""
    path = Path(path)
    if path.is_dir():
        path = path / "transfer_matrix.json"
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as err:
        raise ConfigError(
            f"grid matrix: cannot read a transfer matrix from {path}: {err}"
        ) from None
    if not isinstance(data.get("best_effort"), list):
        raise ConfigError(f"grid matrix: {path} has no best_effort list")
    if data["best_effort"] or not data.get("ranked"):
        return list(data["best_effort"]), "positive transfer"
    ranked = list(data["ranked"])
    return ranked[: max(1, len(ranked) // 2)], "none positive: better half"


def random_tasks(tasks: list[str], count: int, seed: int) -> list[str]:
    """``count`` tasks drawn with ``seed`` (in the tasks' order); the first ``k`` of one seeded
    permutation, so smaller subsets are inside larger ones."""
    order = list(tasks)
    random.Random(f"selection-{seed}").shuffle(order)
    chosen = set(order[:count])
    return [t for t in tasks if t in chosen]


def held_out_score(outcomes: dict[str, Outcome], finetunes: dict[str, str]) -> dict[str, Any]:
    """Per held-out task the best score of its fine-tune run (``finetunes``: task -> run), and
    their mean (None where a run did not finish)."""
    scores: dict[str, float | None] = {}
    for task, run in finetunes.items():
        outcome = outcomes.get(run)
        scores[task] = outcome.best(task) if outcome and outcome.status == "done" else None
    return {"scores": scores, "mean": mean(list(scores.values()))}


class Arm:
    """One pre-training recipe of a study: its run(s) and what the table says about it."""

    def __init__(
        self, study: str, label: str, run: str, tasks: int, steps: str, batch: int
    ) -> None:
        self.study, self.label, self.run = study, label, run
        self.tasks, self.steps, self.batch = tasks, steps, batch


class Selection(Experiment):
    name = "selection"
    description = (
        "ExT5's mixture selection, span-corruption ratio R, task scaling and pre-finetuning, "
        "each judged by fine-tuning on held-out tasks."
    )
    grid = {
        "study": list(STUDIES),
        "finetune": ["translate_en_zarnic", "world_stsb"],  # tasks kept out of pre-training
        "finetune_fraction": [0.25],  # fine-tuning steps per pre-training step
        "ratio": [0, 1, 2, 4, 8],
        "default_ratio": [2],  # R of every other study's mixtures
        "task_fraction": [0.25, 0.5, 0.75, 1.0],
        "batch_size": [16, 64],  # task scaling's two batch sizes
        "prefinetune_fraction": [0.25],  # share of the steps spent pre-finetuning
        "matrix": [None],  # a transfer-matrix result (its transfer_matrix.json)
    }
    default_budget = 300

    # ------------------------------------------------------------------ the grid

    def plan(self, ctx: Context) -> tuple[list[Arm], dict[str, dict[str, Any]], dict[str, Any]]:
        """The arms of the chosen studies, the pre-training runs (name -> run, mixture, steps,
        batch, init_from) and the task file's mixtures by name."""
        unknown = sorted(set(ctx.axis("study")) - set(STUDIES))
        if unknown:
            raise ConfigError(f"grid study: unknown {unknown}; expected some of {list(STUDIES)}")
        steps = ctx.steps(arm="each pre-training")
        batch = int(ctx.base_config["data"]["batch_size"])
        supervised = ctx.tasks()
        held_out = set(ctx.axis("finetune"))
        if held_out & set(supervised):
            raise ConfigError(
                f"grid finetune: {sorted(held_out & set(supervised))} are pre-trained"
            )
        default_r = float(ctx.axis("default_ratio")[0])
        mixtures: dict[str, Any] = {}
        pretrain: dict[str, dict[str, Any]] = {}
        arms: list[Arm] = []

        def supervised_mixture(name: str, tasks: list[str]) -> str:
            mixtures[name] = {
                "name": name,
                "strategy": "proportional",
                "cap": DEFAULT_CAP,
                "tasks": tasks,
            }
            return name

        def with_span(subset: str, tasks: list[str], r: float) -> str:
            """The mixture of span corruption (rate r) and the tasks (rate 1)."""
            sup = supervised_mixture(f"sel_{subset}", tasks)
            if r == 0:
                return sup
            name = f"sel_{subset}_R{r:g}"
            mixtures[name] = {
                "name": name,
                "strategy": "explicit",
                "tasks": [{"name": SPAN_CORRUPTION_TASK, "rate": r}, {"name": sup, "rate": 1.0}],
            }
            return name

        def pre(
            study: str,
            label: str,
            subset: str,
            tasks: list[str],
            r: float = default_r,
            bs: int = batch,
        ) -> None:
            run = f"pre_{subset}_R{r:g}_bs{bs}"
            pretrain[run] = {"mixture": with_span(subset, tasks, r), "steps": steps, "batch": bs}
            arms.append(Arm(study, label, run, len(tasks), str(steps), bs))

        studies = ctx.axis("study")
        if "mixture" in studies:
            pretrain["pre_vanilla"] = {
                "mixture": SPAN_CORRUPTION_TASK,
                "steps": steps,
                "batch": batch,
            }
            arms.append(
                Arm("mixture", "vanilla (span corruption)", "pre_vanilla", 0, str(steps), batch)
            )
            pre("mixture", "all tasks", "all", supervised)
            matrix = ctx.axis("matrix")[0]
            size = len(supervised) // 2
            if matrix is not None:
                families, how = read_best_effort(matrix)
                best = [t for t in supervised if any(t in ctx.tasks(f) for f in families)]
                if best:
                    label = f"best-effort ({', '.join(families)}; {how})"
                    pre("mixture", label, "besteffort", best)
                    size = len(best)
            if 0 < size < len(supervised):
                pre(
                    "mixture",
                    f"random {size} tasks",
                    f"random{size}",
                    random_tasks(supervised, size, ctx.settings.seed),
                )
        if "ratio" in studies:
            for r in ctx.axis("ratio"):
                pre("ratio", f"R = {float(r):g}", "all", supervised, r=float(r))
        if "task-scaling" in studies:
            for fraction in ctx.axis("task_fraction"):
                count = max(1, math.ceil(float(fraction) * len(supervised)))
                subset = "all" if count == len(supervised) else f"tasks{count}"
                chosen = random_tasks(supervised, count, ctx.settings.seed)
                for bs in ctx.axis("batch_size"):
                    pre(
                        "task-scaling",
                        f"{fraction:.0%} tasks, batch {bs}",
                        subset,
                        chosen,
                        bs=int(bs),
                    )
        if "pre-finetuning" in studies:
            pre("pre-finetuning", "multi-task pre-training", "all", supervised)
            share = float(ctx.axis("prefinetune_fraction")[0])
            later = ctx.steps(share, arm="pre-finetuning")
            first = steps - later
            if first < 1:
                raise ConfigError("grid prefinetune_fraction: leaves no span-corruption steps")
            pretrain["pre_span_first"] = {
                "mixture": SPAN_CORRUPTION_TASK,
                "steps": first,
                "batch": batch,
            }
            pretrain["pre_prefinetuned"] = {
                "mixture": supervised_mixture("sel_all", supervised),
                "steps": later,
                "batch": batch,
                "init_from": "pre_span_first",
            }
            arms.append(
                Arm(
                    "pre-finetuning",
                    "pre-finetuning",
                    "pre_prefinetuned",
                    len(supervised),
                    f"{first}+{later}",
                    batch,
                )
            )
        return arms, pretrain, mixtures

    def finetune_run(self, pre: str, task: str) -> str:
        return f"ft_{pre.removeprefix('pre_')}_{task}"

    def runs(self, ctx: Context) -> list[RunSpec]:
        arms, pretrain, mixtures = self.plan(ctx)
        ctx.write_task_file({"mixtures": list(mixtures.values())})
        held_out = list(ctx.axis("finetune"))
        ft_steps = ctx.steps(float(ctx.axis("finetune_fraction")[0]), arm="each fine-tuning")
        # pre-training targets hold span corruption's (T5's density 0.15, mean span 3)
        base = ctx.base_config["data"]["target_length"]
        targets = max(int(base), random_spans_helper(SPAN_CORRUPTION_INPUT_LENGTH, 0.15, 3.0)[1])
        runs = [
            RunSpec(
                name,
                ctx.train_config(
                    spec["steps"],
                    spec["mixture"],
                    held_out,
                    # T5.1.1 pre-trains without dropout; score the held-out tasks once, at the end
                    model={"dropout_rate": 0.0},
                    data={"batch_size": spec["batch"], "target_length": targets},
                    eval={"every": spec["steps"]},
                ),
                init_from=spec.get("init_from"),
                labels={"stage": "pre-training"},
            )
            for name, spec in pretrain.items()
        ]
        finals = {arm.run for arm in arms}
        runs += [
            RunSpec(
                self.finetune_run(pre, task),
                ctx.train_config(ft_steps, task, [task], optimizer={"lr": 1e-3}),
                init_from=pre,
                labels={"stage": "fine-tuning", "pre-training": pre, "task": task},
            )
            for pre in pretrain
            if pre in finals
            for task in held_out
        ]
        return runs

    # ------------------------------------------------------------------ the table

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        arms, pretrain, _ = self.plan(ctx)
        held_out = list(ctx.axis("finetune"))
        ft_steps = ctx.steps(float(ctx.axis("finetune_fraction")[0]))
        rows = []
        for arm in arms:
            result = held_out_score(outcomes, {t: self.finetune_run(arm.run, t) for t in held_out})
            rows.append(
                [
                    arm.study,
                    arm.label,
                    arm.tasks,
                    arm.steps,
                    arm.batch,
                    result["mean"],
                    *result["scores"].values(),
                ]
            )
        studies = [s for s in STUDIES if s in ctx.axis("study")]
        return Summary(
            columns=[
                "study",
                "arm",
                "tasks",
                "pre-train steps",
                "batch",
                "held-out mean",
                *held_out,
            ],
            rows=rows,
            notes=[
                f"{len(pretrain)} pre-training runs; each arm then fine-tuned {ft_steps} steps on "
                f"each held-out task ({', '.join(held_out)}), seed {ctx.settings.seed}; a task's "
                f"score is its best of {ctx.settings.evals} fine-tuning evaluations.",
                f"Span-corruption rate R = {float(ctx.axis('default_ratio')[0]):g} per supervised "
                "example unless the arm says otherwise; supervised tasks examples-proportional "
                f"(cap {DEFAULT_CAP}).",
                *(FINDINGS[s] for s in studies),
            ],
        )

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        labels = [f"{row[0]}: {row[1]}" for row in summary.rows]
        return [
            bar_plot(
                out_dir / "selection.png",
                labels,
                {"held-out mean": [row[5] for row in summary.rows]},
                title="Pre-training mixtures judged by held-out fine-tuning",
                ylabel="score (best per task)",
            )
        ]
