"""Fine-tuning methods (T5 §3.5.1, Table 10) in miniature: what to train of a pre-trained model.

One pre-training run (stage 1, ``pretrain_factor`` × the budget on ``pretrain_mixture``: span
corruption on the corpus by default, as T5 pre-trained on C4 alone, so the tasks are new to the
base), then from it, on one small and one large task (``tasks``), each for ``budget`` steps:

- full fine-tuning (the baseline);
- bottleneck adapters of inner dimension d (``adapter_dims``) after every feed-forward, with the
  layer norms, the base frozen;
- LoRA of rank r (``lora_ranks``, alpha = 2r) on the attention's q and v, the base frozen;
- gradual unfreezing: the top block of encoder and decoder first, one more every
  ``budget / num_layers`` steps (the tiny preset has 2 layers: two episodes);

and full fine-tuning on the default mixture of all 24 in-mixture tasks (``mixture_methods``
names the methods run on it; scored on the same two tasks).

The table gives each method's trainable parameters (what the run's optimizer trains: the base
counted in full for full fine-tuning and gradual unfreezing), each task's best score (T5
reports each task at its best checkpoint), seconds per step (the run's wall time over its
steps, evaluations included: the same evaluations in every arm of a task) and the size of the
last checkpoint folder (adapter runs keep only the trained tensors and their optimizer state).
T5 found that small tasks do well with small adapters while large tasks need a large d, and
that gradual unfreezing is slightly worse than full fine-tuning (and faster).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskmix.default_data import SPAN_CORRUPTION_TASK
from taskmix.recipes.experiments.base import Context, Experiment, Outcome, RunSpec, Summary, mean
from taskmix.recipes.experiments.results import bar_plot
from taskmix.recipes.experiments.scaling import pretrain_target_length

FINDING = (
    "T5 (Table 10): full fine-tuning is best; adapters come close, small tasks with a small d "
    "and large tasks only with a large d; gradual unfreezing is slightly worse than full "
    "fine-tuning (and cheaper per step)."
)
RUNS = "runs"  # where the runner puts the run folders (``runner.RUNS``; runner imports us)
PRETRAIN = "pretrain"
MIXTURE = "default"


def methods(ctx: Context) -> dict[str, dict[str, Any]]:
    """Method -> the config sections it sets over a full fine-tune."""
    out: dict[str, dict[str, Any]] = {"full": {}}
    for d in ctx.axis("adapter_dims"):
        out[f"adapter_d{d}"] = {
            "model": {"adapter": {"kind": "bottleneck", "dim": int(d), "train_layer_norms": True}}
        }
    for r in ctx.axis("lora_ranks"):
        out[f"lora_r{r}"] = {
            "model": {
                "adapter": {
                    "kind": "lora",
                    "rank": int(r),
                    "alpha": 2.0 * int(r),
                    "target_modules": ["q", "v"],
                }
            }
        }
    out["gradual_unfreezing"] = {"optimizer": {"gradual_unfreezing": True}}
    return out


def run_name(method: str, task: str) -> str:
    return f"{method}__{task}"


class FinetuningMethods(Experiment):
    name = "finetuning-methods"
    description = "T5's fine-tuning methods: full, adapters (several d), LoRA, gradual unfreezing."
    grid = {
        "adapter_dims": [8, 32, 128, 512],
        "lora_ranks": [4, 16],
        "tasks": ["world_rte", "world_nli"],  # one small (250 examples), one large (5000)
        "mixture_methods": ["full"],  # methods also fine-tuned on the default mixture
        "pretrain_factor": [2],
        "pretrain_mixture": [SPAN_CORRUPTION_TASK],
    }
    default_budget = 150

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = [str(t) for t in ctx.axis("tasks")]
        steps = ctx.steps(arm="each fine-tune")
        pt_steps = ctx.steps(float(ctx.axis("pretrain_factor")[0]), arm="the pre-training")
        runs = [
            RunSpec(
                PRETRAIN,
                ctx.train_config(
                    pt_steps,
                    str(ctx.axis("pretrain_mixture")[0]),
                    tasks,
                    eval={"every": pt_steps},  # one evaluation: the fine-tunes are compared
                    data={"target_length": pretrain_target_length(ctx)},
                ),
                labels={"method": "pre-training"},
            )
        ]
        arms = methods(ctx)
        for task in tasks:
            for method, sections in arms.items():
                runs.append(
                    RunSpec(
                        run_name(method, task),
                        ctx.train_config(steps, task, [task], **sections),
                        init_from=PRETRAIN,
                        labels={"method": method, "task": task},
                    )
                )
        for method in ctx.axis("mixture_methods"):
            runs.append(
                RunSpec(
                    run_name(str(method), MIXTURE),
                    ctx.train_config(steps, MIXTURE, tasks, **arms[str(method)]),
                    init_from=PRETRAIN,
                    labels={"method": method, "task": MIXTURE},
                )
            )
        return runs

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        tasks = [str(t) for t in ctx.axis("tasks")]
        measured = {
            name: run_measures(ctx.out / RUNS / name)
            for name, outcome in outcomes.items()
            if outcome.status == "done" and name != PRETRAIN
        }
        return summary_table(ctx, outcomes, measured, tasks)

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        tasks = [str(t) for t in ctx.axis("tasks")]
        labels = [row[0] for row in summary.rows]
        series = {t: [row[summary.columns.index(t)] for row in summary.rows] for t in tasks}
        return [
            bar_plot(
                out_dir / "finetuning_methods.png",
                labels,
                series,
                title="Fine-tuning methods: best score per task",
                ylabel="score (best evaluation)",
            )
        ]


def summary_table(
    ctx: Context,
    outcomes: dict[str, Outcome],
    measured: dict[str, dict[str, int]],
    tasks: list[str],
) -> Summary:
    """One row per method: trainable parameters (and % of the model), each task's best score,
    seconds per step and checkpoint KB (means over the method's runs); ``measured`` holds each
    finished run's ``trainable``, ``total`` and ``checkpoint_bytes``."""
    rows = []
    mixture_methods = [str(m) for m in ctx.axis("mixture_methods")]
    arms = [(m, tasks) for m in methods(ctx)] + [(m, [MIXTURE]) for m in mixture_methods]
    for method, trained_on in arms:
        names = [run_name(method, t) for t in trained_on]
        done = [n for n in names if n in outcomes and outcomes[n].status == "done"]
        sizes = [measured[n] for n in done if n in measured]
        trainable = sizes[0]["trainable"] if sizes else None
        share = 100.0 * trainable / sizes[0]["total"] if sizes and trainable is not None else None
        if trained_on == [MIXTURE]:
            scores = [outcomes[names[0]].best(t) if done else None for t in tasks]
            label = f"{method} (default mixture)"
        else:
            scores = [
                outcomes[n].best(t) if n in done else None
                for n, t in zip(names, tasks, strict=True)
            ]
            label = method
        per_step = mean(
            [
                outcomes[n].seconds / outcomes[n].report.get("step", 1)
                if outcomes[n].seconds
                else None
                for n in done
            ]
        )
        kb = mean([s["checkpoint_bytes"] / 1024 for s in sizes])
        rows.append(
            [
                label,
                trainable,
                None if share is None else round(share, 2),
                *scores,
                None if per_step is None else round(per_step, 3),
                None if kb is None else round(kb),
            ]
        )
    steps = ctx.budget
    notes = [
        f"Each fine-tune: {steps} steps from one pre-training ({PRETRAIN}, "
        f"{ctx.steps(float(ctx.axis('pretrain_factor')[0]))} steps on "
        f"{ctx.axis('pretrain_mixture')[0]}), seed {ctx.settings.seed}; each task at its best of "
        f"{ctx.settings.evals} evaluations. Tasks: {', '.join(tasks)} (the first is the small "
        "one); the default-mixture row fine-tunes on all 24 in-mixture tasks and is scored on "
        "the same tasks.",
        "trainable: parameters the optimizer trains (gradual unfreezing: all of them by the "
        "last episode); s/step: wall seconds over steps, evaluations and checkpoints included; "
        "checkpoint KB: the last checkpoint folder (model tensors, optimizer state, state).",
        FINDING,
    ]
    return Summary(
        columns=["method", "trainable", "% of model", *tasks, "s/step", "checkpoint KB"],
        rows=rows,
        notes=notes,
        data={"measured": measured},
    )


def run_measures(run_dir: Path) -> dict[str, int]:
    """A finished run's trainable and total parameter counts (its model as ``load_run``
    rebuilds it, with what its config trains) and the bytes of its last checkpoint folder."""
    from taskmix.training.adapting import adapter_predicate
    from taskmix.training.runs import find_checkpoint, load_run

    model, _, config = load_run(run_dir)
    keep = adapter_predicate(model, config)
    params = list(model.named_parameters())
    trainable = sum(p.numel() for n, p in params if keep is None or keep(n, p))
    folder = find_checkpoint(run_dir)
    size = sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())
    return {
        "trainable": trainable,
        "total": sum(p.numel() for _, p in params),
        "checkpoint_bytes": size,
    }
