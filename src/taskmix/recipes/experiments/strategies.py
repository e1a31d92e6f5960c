"""Training strategies (T5 §3.7, Table 14): pre-train then fine-tune, or train on everything?

Five strategies with equal compute, on the same tasks and seed (budget P = ``--budget``,
fine-tuning F = ``finetune_fraction`` x P, T5's 2^19 + 2^18 steps):

- ``unsupervised_pretrain_finetune``: P steps of span corruption on the corpus, then F steps
  of fine-tuning on each task separately (one fine-tune run per task, all from that run);
- ``multitask_training``: P + F steps on one mixture of span corruption and every supervised
  task (examples-proportional, cap ``cap``), scores read from that run;
- ``multitask_pretrain_finetune``: P steps on that mixture, then F steps on each task;
- ``leave_one_out``: for each held-out task X, P steps on the mixture without X, then F steps
  on X (one pre-training run per held-out task: by default the first task of each family);
- ``supervised_pretrain_finetune``: P steps on the supervised tasks only, then F on each task.

Each task is scored at its best evaluation, as T5 reports. T5 found multi-task pre-training
followed by fine-tuning about as good as unsupervised pre-training then fine-tuning (the
baseline), multi-task training alone somewhat worse, leave-one-out only slightly worse than
multi-task pre-training (so pre-training on many tasks helps a task it never saw), and
supervised-only pre-training clearly worse except on translation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskmix.default_data import DEFAULT_CAP, SPAN_CORRUPTION_TASK
from taskmix.errors import ConfigError
from taskmix.recipes.experiments.base import Context, Experiment, Outcome, RunSpec, Summary, mean
from taskmix.recipes.experiments.results import bar_plot

FINDING = (
    "T5 (Table 14): multi-task pre-training + fine-tuning ~ unsupervised pre-training + "
    "fine-tuning (the baseline); multi-task training alone is worse; leave-one-out is only "
    "slightly worse than multi-task pre-training; supervised-only pre-training is clearly worse "
    "(except on translation)."
)

UNSUPERVISED = "unsupervised_pretrain_finetune"
MULTITASK = "multitask_training"
MULTITASK_PRETRAIN = "multitask_pretrain_finetune"
LEAVE_ONE_OUT = "leave_one_out"
SUPERVISED = "supervised_pretrain_finetune"
STRATEGIES = (UNSUPERVISED, MULTITASK, MULTITASK_PRETRAIN, LEAVE_ONE_OUT, SUPERVISED)

# Pre-training run and mixture of each pre-train-then-fine-tune strategy (leave-one-out: per task).
PRETRAIN_RUN = {
    UNSUPERVISED: "unsupervised_pretrain",
    MULTITASK_PRETRAIN: "multitask_pretrain",
    SUPERVISED: "supervised_pretrain",
}
FINETUNE_PREFIX = {
    UNSUPERVISED: "unsupervised_ft",
    MULTITASK_PRETRAIN: "multitask_ft",
    SUPERVISED: "supervised_ft",
}
MULTITASK_MIXTURE = "strategies_multitask"
SUPERVISED_MIXTURE = "strategies_supervised"


def loo_mixture(task: str) -> str:
    return f"strategies_multitask_without_{task}"


class Strategies(Experiment):
    name = "strategies"
    description = (
        "T5's training strategies: unsupervised / multi-task / leave-one-out / supervised "
        "pre-training then fine-tuning, and multi-task training, at equal compute."
    )
    # leave_out: held-out tasks of the leave-one-out arm ([] = the first task of each family);
    # cap: examples-proportional cap K of the multi-task mixtures; finetune_fraction: F / P.
    grid = {"leave_out": [], "cap": [DEFAULT_CAP], "finetune_fraction": [0.5]}
    # 2 families of 3 tasks: 26 runs, 16.5 x budget steps in all (fine-tuning every task under
    # three strategies is what costs); tasks the tiny model learns within a few hundred steps.
    default_budget = 150
    default_families = ("dialogue", "semantic_parsing")

    # ------------------------------------------------------------------ the grid

    def held_out(self, ctx: Context) -> list[str]:
        """The leave-one-out arm's held-out tasks: the ``leave_out`` axis, else the first task
        of each family in use."""
        tasks = ctx.tasks()
        chosen = ctx.axis("leave_out") or [ctx.tasks(f)[0] for f in ctx.families() if ctx.tasks(f)]
        unknown = [t for t in chosen if t not in tasks]
        if unknown:
            raise ConfigError(
                f"grid.leave_out: {', '.join(map(repr, unknown))} not among the tasks in use "
                f"({', '.join(tasks)})"
            )
        return list(dict.fromkeys(chosen))

    def step_counts(self, ctx: Context) -> tuple[int, int]:
        """(P, F): pre-training steps and fine-tuning steps; multi-task training gets P + F."""
        fraction = float(ctx.axis("finetune_fraction")[0])
        return ctx.steps(arm="pre-training"), ctx.steps(fraction, arm="fine-tuning")

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = ctx.tasks()
        held_out = self.held_out(ctx)
        cap = int(ctx.axis("cap")[0])

        def proportional(name: str, components: list[str]) -> dict[str, Any]:
            return {"name": name, "tasks": components, "strategy": "proportional", "cap": cap}

        ctx.write_task_file(
            {
                "mixtures": [
                    proportional(MULTITASK_MIXTURE, [SPAN_CORRUPTION_TASK, *tasks]),
                    proportional(SUPERVISED_MIXTURE, tasks),
                    *(
                        proportional(loo_mixture(x), [SPAN_CORRUPTION_TASK, *_without(tasks, x)])
                        for x in held_out
                    ),
                ]
            }
        )
        pretrain, finetune = self.step_counts(ctx)

        def run(name: str, steps: int, mixture: str, evaluate: list[str], **labels: Any) -> RunSpec:
            # a pre-training run evaluates once, at its end: a cheap look at what it learnt
            once = {"eval": {"every": steps}} if labels["stage"] == "pretrain" else {}
            return RunSpec(name, ctx.train_config(steps, mixture, evaluate, **once), labels=labels)

        def fine_tune(name: str, source: str, task: str, strategy: str) -> RunSpec:
            spec = run(name, finetune, task, [task], strategy=strategy, task=task, stage="finetune")
            spec.init_from = source
            return spec

        specs = [
            run(
                PRETRAIN_RUN[UNSUPERVISED],
                pretrain,
                SPAN_CORRUPTION_TASK,
                tasks,
                strategy=UNSUPERVISED,
                stage="pretrain",
            ),
            run(
                MULTITASK,
                pretrain + finetune,
                MULTITASK_MIXTURE,
                tasks,
                strategy=MULTITASK,
                stage="train",
            ),
            run(
                PRETRAIN_RUN[MULTITASK_PRETRAIN],
                pretrain,
                MULTITASK_MIXTURE,
                tasks,
                strategy=MULTITASK_PRETRAIN,
                stage="pretrain",
            ),
            run(
                PRETRAIN_RUN[SUPERVISED],
                pretrain,
                SUPERVISED_MIXTURE,
                tasks,
                strategy=SUPERVISED,
                stage="pretrain",
            ),
        ]
        for x in held_out:
            specs.append(
                run(
                    f"loo_pretrain_{x}",
                    pretrain,
                    loo_mixture(x),
                    tasks,
                    strategy=LEAVE_ONE_OUT,
                    task=x,
                    stage="pretrain",
                )
            )
        for strategy in (UNSUPERVISED, MULTITASK_PRETRAIN, SUPERVISED):
            for task in tasks:
                specs.append(
                    fine_tune(
                        f"{FINETUNE_PREFIX[strategy]}_{task}",
                        PRETRAIN_RUN[strategy],
                        task,
                        strategy,
                    )
                )
        for x in held_out:
            specs.append(fine_tune(f"loo_ft_{x}", f"loo_pretrain_{x}", x, LEAVE_ONE_OUT))
        return specs

    # ------------------------------------------------------------------ the table

    def scores(self, ctx: Context, outcomes: dict[str, Outcome]) -> dict[str, dict[str, float]]:
        """Strategy -> task -> the task's best score in the run that reports it (the fine-tune
        run on the task, or the multi-task training run); missing runs leave tasks out."""
        scores: dict[str, dict[str, float]] = {s: {} for s in STRATEGIES}

        def put(strategy: str, run: str, task: str) -> None:
            outcome = outcomes.get(run)
            value = outcome.best(task) if outcome is not None else None
            if value is not None:
                scores[strategy][task] = value

        for task in ctx.tasks():
            put(MULTITASK, MULTITASK, task)
            for strategy, prefix in FINETUNE_PREFIX.items():
                put(strategy, f"{prefix}_{task}", task)
        for x in self.held_out(ctx):
            put(LEAVE_ONE_OUT, f"loo_ft_{x}", x)
        return scores

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        families = ctx.families()
        tasks = ctx.tasks()
        held_out = self.held_out(ctx)
        scores = self.scores(ctx, outcomes)
        # Few tasks: one column each (as T5's Table 14 has one per benchmark); else families.
        per_task = len(tasks) <= 4
        groups = {t: [t] for t in tasks} if per_task else {f: ctx.tasks(f) for f in families}
        rows = []
        for strategy in STRATEGIES:
            got = scores[strategy]
            rows.append(
                [
                    strategy,
                    mean([got.get(t) for t in tasks]),
                    mean([got.get(t) for t in held_out]),
                    *(mean([got.get(t) for t in members]) for members in groups.values()),
                ]
            )
        pretrain, finetune = self.step_counts(ctx)
        notes = [
            f"{len(tasks)} tasks ({', '.join(tasks)}), seed {ctx.settings.seed}; each task at its "
            f"best of {ctx.settings.evals} evaluations of the run that reports it.",
            f"Steps per task, equal across strategies: pre-training {pretrain} + fine-tuning "
            f"{finetune} on the task alone (T5: 2^19 + 2^18); multi-task training "
            f"{pretrain + finetune} (T5: 2^19 + 2^18). Mixtures examples-proportional, cap "
            f"K = {int(ctx.axis('cap')[0])}; multi-task = {SPAN_CORRUPTION_TASK} + every task.",
            f"leave_one_out scores only its held-out tasks ({', '.join(held_out)}): its "
            "'average' is theirs; 'held-out avg' compares every strategy on those tasks alone.",
            FINDING,
        ]
        return Summary(
            columns=["strategy", "average", "held-out avg", *groups],
            rows=rows,
            notes=notes,
            data={"scores": scores, "held_out": held_out, "steps": [pretrain, finetune]},
        )

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        labels = [row[0] for row in summary.rows]
        return [
            bar_plot(
                out_dir / "strategies.png",
                labels,
                {
                    "average": [row[1] for row in summary.rows],
                    "held-out tasks": [row[2] for row in summary.rows],
                },
                title="Training strategies at equal compute: mean task score",
                ylabel="score (best per task)",
            )
        ]


def _without(tasks: list[str], task: str) -> list[str]:
    return [t for t in tasks if t != task]
