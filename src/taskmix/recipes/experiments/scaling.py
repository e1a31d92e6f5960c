"""Scaling at fixed compute (T5 §3.7, Table 13): how best to spend 4× the baseline's compute.

Every arm pre-trains and then fine-tunes (the fine-tune starts from the arm's pre-training run).
The baseline pre-trains for ``budget`` steps and fine-tunes for ``finetune_fraction`` of that;
every other arm spends about 4× its compute (steps × batch × parameters):

- ``4x_steps``: the baseline model, 4× the pre-training and fine-tuning steps;
- ``4x_batch``: the baseline model and steps, 4× the batch size;
- ``2x_size``: a model with about 2× the parameters for 2× the steps;
- ``4x_size``: a model with about 4× the parameters for the baseline's steps;
- ``4x_ensemble``: 4 baselines pre-trained and fine-tuned separately (seeds 0..3), decoded
  together by averaging their logits at every step;
- ``4x_ensemble_ft``: 4 fine-tunes (seeds 0..3) of the one baseline pre-training, ensembled alike
  (cheaper: one pre-training).

"2× / 4× model" follows T5, which made its bigger models deeper: the preset's encoder and decoder
get the number of layers whose total parameter count is closest to 2× (4×) the baseline's; the
table prints the counts and ratios. Each arm is scored at its last evaluation, as the ensembles
(made of the members' last checkpoints) are. T5 found every arm better than the baseline; a
bigger model for fewer steps about as good as (often better than) a smaller one for longer; 4×
batch weaker than 4× steps; ensembles an orthogonal, large gain; fine-tune-only ensembles less
(but they are cheaper).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from taskmix.default_data import DEFAULT_CAP, PRETRAIN_MIXTURE
from taskmix.recipes.experiments.base import (
    Context,
    Experiment,
    Outcome,
    RunSpec,
    Summary,
    mean,
)
from taskmix.recipes.experiments.results import bar_plot

# torch, the models and the run loaders are imported inside the functions that use them: the
# registry of experiments is imported by ``taskmix experiment --help`` and must stay light.

FINDING = (
    "T5 (Table 13): every 4x-compute arm beats the baseline; bigger models help most, and 2x size "
    "for 2x steps is about as good as 4x size (size and steps complement each other); 4x batch "
    "is below 4x steps; an ensemble of 4 separately pre-trained models gives a large, orthogonal "
    "gain; 4 fine-tunes of one pre-training gain less, for a quarter of the pre-training."
)
FINETUNE_MIXTURE = "scaling_finetune"
ENSEMBLES = "ensembles"  # the folder of the ensembles' cached scores
SPAN_TARGET_LENGTH = 32
RUNS = "runs"  # where the runner puts the run folders (``runner.RUNS``; runner imports us)


def pretrain_target_length(ctx: Context) -> int:
    """The pre-training runs' target length: span corruption of the corpus's 128-token inputs
    needs about 29 target tokens, whatever the fine-tunes' target length."""
    target = int(ctx.base_config["data"]["target_length"])
    return max(target, SPAN_TARGET_LENGTH)


def model_fields(ctx: Context) -> dict[str, Any]:
    """The base model's preset fields (``model`` of the settings' base over the default)."""
    return ctx.base_config["model"]


def parameter_count(ctx: Context, num_layers: int | None = None) -> int:
    """Parameters of the base model with ``num_layers`` encoder and decoder layers (built on
    the meta device: no memory, no time)."""
    import torch

    from taskmix.models import build_model, preset
    from taskmix.training.build import load_vocabulary

    base = ctx.base_config
    model = base["model"]
    vocabulary = load_vocabulary(base["vocabulary"])
    overrides = dict(model.get("overrides", {}))
    if num_layers is not None:
        overrides.update(num_layers=num_layers, num_decoder_layers=num_layers)
    config = preset(
        model.get("preset", "tiny"),
        version=str(model.get("version", "1.1")),
        vocab_size=-(-vocabulary.vocab_size // 128) * 128,
        **overrides,
    )
    with torch.device("meta"):
        return sum(p.numel() for p in build_model(config).parameters())


def base_layers(ctx: Context) -> int:
    """The baseline's layers per stack (the preset's unless the base overrides them)."""
    from taskmix.models import preset

    model = model_fields(ctx)
    if "num_layers" in model.get("overrides", {}):
        return int(model["overrides"]["num_layers"])
    config = preset(model.get("preset", "tiny"), version=str(model.get("version", "1.1")))
    return config.num_layers


def layers_for(ctx: Context, factor: float) -> int:
    """The depth whose parameter count is closest to ``factor`` × the baseline's."""
    target = factor * parameter_count(ctx, base_layers(ctx))
    best, layers = None, base_layers(ctx)
    while True:
        count = parameter_count(ctx, layers)
        if best is not None and abs(count - target) >= abs(best[1] - target):
            return best[0]
        best = (layers, count)
        layers += 1


def ensemble_members(ctx: Context) -> dict[str, list[str]]:
    """Ensemble arm -> its fine-tuned member runs (the baseline's fine-tune is member 0)."""
    n = int(ctx.axis("members")[0])
    return {
        "4x_ensemble": ["ft_baseline", *(f"ft_seed{s}" for s in range(1, n))],
        "4x_ensemble_ft": ["ft_baseline", *(f"ft_baseline_seed{s}" for s in range(1, n))],
    }


class Scaling(Experiment):
    name = "scaling"
    description = "T5's scaling at 4x compute: steps, batch, model size, ensembles."
    grid = {"finetune_fraction": [0.5], "members": [4], "pretrain_mixture": [PRETRAIN_MIXTURE]}
    default_budget = 200
    default_families = ("nli", "classification")

    def arms(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """Arm -> steps factor, batch factor and layers (the ensembles are listed apart)."""
        layers = base_layers(ctx)
        return {
            "baseline": {"steps": 1, "batch": 1, "layers": layers},
            "4x_steps": {"steps": 4, "batch": 1, "layers": layers},
            "4x_batch": {"steps": 1, "batch": 4, "layers": layers},
            "2x_size": {"steps": 2, "batch": 1, "layers": layers_for(ctx, 2)},
            "4x_size": {"steps": 1, "batch": 1, "layers": layers_for(ctx, 4)},
        }

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = ctx.tasks()
        ctx.write_task_file(
            {
                "mixtures": [
                    {
                        "name": FINETUNE_MIXTURE,
                        "tasks": tasks,
                        "strategy": "proportional",
                        "cap": DEFAULT_CAP,
                    }
                ]
            }
        )
        fraction = float(ctx.axis("finetune_fraction")[0])
        pretrain_mixture = str(ctx.axis("pretrain_mixture")[0])
        batch = int(ctx.base_config["data"]["batch_size"])
        base_steps, ft_steps = ctx.steps(arm="baseline"), ctx.steps(fraction, arm="fine-tune")
        runs = []

        def pair(arm: str, steps: int, batch_factor: int, layers: int, seed: int | None = None):
            model = {"overrides": {"num_layers": layers, "num_decoder_layers": layers}}
            data = {"batch_size": batch * batch_factor}
            pt_data = {**data, "target_length": pretrain_target_length(ctx)}
            extra = {} if seed is None else {"seed": seed}
            labels = {"arm": arm, "layers": layers, "batch": batch * batch_factor}
            pt_steps = base_steps * steps
            pt = RunSpec(
                f"pt_{arm}",
                ctx.train_config(
                    pt_steps,
                    pretrain_mixture,
                    tasks,
                    model=model,
                    data=pt_data,
                    eval={"every": pt_steps},  # one evaluation: only the fine-tunes are compared
                    **extra,
                ),
                labels={**labels, "stage": "pre-train"},
            )
            ft = RunSpec(
                f"ft_{arm}",
                ctx.train_config(ft_steps * steps, FINETUNE_MIXTURE, tasks, data=data, **extra),
                init_from=pt.name,
                labels={**labels, "stage": "fine-tune"},
            )
            return [pt, ft]

        for arm, spec in self.arms(ctx).items():
            runs += pair(arm, spec["steps"], spec["batch"], spec["layers"])
        layers = base_layers(ctx)
        for seed in range(1, int(ctx.axis("members")[0])):
            runs += pair(f"seed{seed}", 1, 1, layers, seed=ctx.settings.seed + seed)
            runs.append(
                RunSpec(
                    f"ft_baseline_seed{seed}",
                    ctx.train_config(
                        ft_steps, FINETUNE_MIXTURE, tasks, seed=ctx.settings.seed + seed
                    ),
                    init_from="pt_baseline",
                    labels={"arm": f"baseline_seed{seed}", "stage": "fine-tune"},
                )
            )
        return runs

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        tasks, families = ctx.tasks(), ctx.families()
        fraction = float(ctx.axis("finetune_fraction")[0])
        base_params = parameter_count(ctx, base_layers(ctx))
        batch = int(ctx.base_config["data"]["batch_size"])
        ft_steps = ctx.steps(fraction)

        def scores(outcome: Outcome | None) -> dict[str, float | None]:
            if outcome is None or outcome.status != "done":
                return dict.fromkeys(tasks)
            return {t: outcome.final(t) for t in tasks}

        rows = []
        data: dict[str, Any] = {"arms": {}}
        for arm, spec in self.arms(ctx).items():
            params = parameter_count(ctx, spec["layers"])
            compute = spec["steps"] * spec["batch"] * params / base_params
            by_task = scores(outcomes.get(f"ft_{arm}"))
            rows.append(
                self._row(
                    arm,
                    ctx.budget * spec["steps"],
                    ft_steps * spec["steps"],
                    batch * spec["batch"],
                    spec["layers"],
                    params,
                    compute,
                    by_task,
                    families,
                    ctx,
                )
            )
            data["arms"][arm] = {"parameters": params, "compute": compute, "scores": by_task}
        members = ensemble_members(ctx)
        for arm, names in members.items():
            by_task = ensemble_scores(ctx, arm, names, outcomes, tasks)
            n = len(names)
            pretrainings = n if arm == "4x_ensemble" else 1
            total = ctx.budget * pretrainings + ft_steps * n
            compute = total / (ctx.budget + ft_steps)
            rows.append(
                self._row(
                    arm,
                    f"{n}x{ctx.budget}" if pretrainings > 1 else ctx.budget,
                    f"{n}x{ft_steps}",
                    batch,
                    base_layers(ctx),
                    base_params,
                    compute,
                    by_task,
                    families,
                    ctx,
                )
            )
            data["arms"][arm] = {"members": names, "compute": compute, "scores": by_task}
        notes = [
            f"{len(tasks)} tasks ({', '.join(tasks)}), fine-tuned together (examples-proportional, "
            f"cap {DEFAULT_CAP}) after pre-training on {ctx.axis('pretrain_mixture')[0]}; "
            f"baseline: {ctx.budget} pre-training + {ft_steps} fine-tuning steps at batch "
            f"{batch}, seed {ctx.settings.seed}; each arm scored at its last of "
            f"{ctx.settings.evals} evaluations (ensembles: their members' last checkpoints, "
            "logits averaged at every decoding step).",
            "compute = steps x batch x parameters relative to the baseline (ensembles: total "
            "steps relative to the baseline's); bigger models are deeper (layers per stack).",
            FINDING,
        ]
        return Summary(
            columns=[
                "arm",
                "pre-train steps",
                "fine-tune steps",
                "batch",
                "layers",
                "parameters",
                "compute",
                "average",
                *families,
            ],
            rows=rows,
            notes=notes,
            data=data,
        )

    @staticmethod
    def _row(
        arm: str,
        pt_steps: Any,
        ft_steps: Any,
        batch: int,
        layers: int,
        params: int,
        compute: float,
        by_task: dict[str, float | None],
        families: list[str],
        ctx: Context,
    ) -> list[Any]:
        by_family = [mean([by_task[t] for t in ctx.tasks(f)]) for f in families]
        return [
            arm,
            pt_steps,
            ft_steps,
            batch,
            layers,
            params,
            round(compute, 2),
            mean(list(by_task.values())),
            *by_family,
        ]

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        labels = [row[0] for row in summary.rows]
        column = summary.columns.index("average")
        return [
            bar_plot(
                out_dir / "scaling.png",
                labels,
                {"average": [row[column] for row in summary.rows]},
                title="Scaling at 4x compute: mean task score",
                ylabel="score (last evaluation)",
            )
        ]


def ensemble_scores(
    ctx: Context, arm: str, members: list[str], outcomes: dict[str, Outcome], tasks: list[str]
) -> dict[str, float | None]:
    """Each task's score (mean of its metrics) of the members' last checkpoints decoded together
    (logits averaged), with the members' eval settings; cached in ``DIR/ensembles/ARM.json``
    with the members' steps, so collecting the results again does not decode again. None
    per task if a member did not finish."""
    import torch

    from taskmix.evaluation import task_evaluator
    from taskmix.training.runs import load_run

    if any(outcomes.get(m) is None or outcomes[m].status != "done" for m in members):
        return dict.fromkeys(tasks)
    key = {m: outcomes[m].report.get("step") for m in members}
    cache = ctx.out / ENSEMBLES / f"{arm}.json"
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("members") == key and sorted(cached["results"]) == sorted(tasks):
            return {t: cached["results"][t] for t in tasks}
    models, vocabulary, config = [], None, None
    for member in members:
        model, vocabulary, config = load_run(ctx.out / RUNS / member)
        models.append(model)
    assert config is not None
    with torch.no_grad():  # the members' eval settings: the same as their runs'
        results = task_evaluator(config, list(tasks))(models, vocabulary, 0)
    by_task = {
        t: (sum(results[t].values()) / len(results[t]) if results.get(t) else None) for t in tasks
    }
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps({"members": key, "results": by_task, "metrics": results}) + "\n")
    return by_task
