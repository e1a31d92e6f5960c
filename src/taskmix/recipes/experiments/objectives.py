"""Unsupervised objectives (T5 §3.3, Tables 4-7): pre-train with each, fine-tune on the same tasks.

Every arm pre-trains a fresh model for the same number of steps on the default corpus with one
objective (a ``pretraining:`` entry of the experiment's task file), then fine-tunes it on the
same small mixture of downstream tasks for the same number of steps; an extra arm fine-tunes
from scratch (no pre-training) as the floor. The arms: the high-level objectives (BERT-style,
MASS-style, prefix LM, deshuffling, i.i.d. replace spans, drop tokens, span corruption),
span corruption's corruption rate (T5 Table 6) and its mean span length (Table 7). The table
also gives the mean target length of each objective's pre-training examples, measured on the
examples themselves: T5's training-speed argument for span corruption is that its targets are
short. T5 found denoising (BERT-style) objectives better than prefix LM and deshuffling,
replace-spans / drop-tokens variants about as good as BERT-style with shorter targets, the
corruption rate mattering little except at 50% (worse), and the span length mattering little.

``pretrain_finetune_runs`` (shared with the pre-training data experiment) builds the runs of
one pre-training arm and its fine-tune.
"""

from __future__ import annotations

import inspect
from functools import cache
from itertools import islice
from pathlib import Path
from typing import Any

from taskmix.data.sources import JsonlSource
from taskmix.default_data import corpus_files, default_vocabulary, ensure_data
from taskmix.objectives import OBJECTIVES, make_pretraining_task
from taskmix.recipes.experiments.base import Context, Experiment, Outcome, RunSpec, Summary, mean
from taskmix.recipes.experiments.results import bar_plot

FINDING = (
    "T5 (Tables 4-7): BERT-style denoising beats prefix LM and deshuffling; i.i.d. replace "
    "spans, drop tokens and span corruption are about as good with shorter targets (faster); "
    "corruption rate matters little except 50% (worse); mean span length matters little."
)
BASE_RATE, BASE_SPAN = 0.15, 3
NO_PRETRAINING = "no_pretraining"
DOWNSTREAM_TASKS = ("topic", "cbqa_people", "world_boolq")
MEASURED_EXAMPLES = 200  # pre-training examples whose target lengths are averaged


def pretraining_entry(
    name: str, objective: str, params: dict[str, Any], input_length: int, corpus: list[str]
) -> dict[str, Any]:
    """A ``pretraining:`` entry of a task file."""
    return {
        "name": name,
        "corpus": corpus,
        "objective": objective,
        "input_length": input_length,
        "params": params,
    }


def default_corpus() -> list[str]:
    """The default corpus' training file (absolute path), generated if needed."""
    return [str(corpus_files(ensure_data(0))["train"])]


@cache
def _task(objective: str, params: tuple[tuple[str, Any], ...], input_length: int, corpus: str):
    return make_pretraining_task(
        f"measure_{objective}",
        JsonlSource({"train": corpus}),
        default_vocabulary(0),
        objective,
        input_length=input_length,
        **dict(params),
    )


def sequence_lengths(entry: dict[str, Any]) -> dict[str, int]:
    """The (inputs, targets; and raw: corpus tokens per example) lengths a run of this pre-training entry needs (the objective's
    own: targets are the whole text for BERT-style, a few spans for span corruption)."""
    task = _task(
        entry["objective"],
        tuple(sorted(entry["params"].items())),
        entry["input_length"],
        entry["corpus"][0],
    )
    return {**task.metadata["sequence_length"], "raw": task.metadata["raw_length"]}


@cache
def _measure(objective: str, params: tuple, input_length: int, corpus: str) -> dict[str, float]:
    task = _task(objective, params, input_length, corpus)
    examples = list(islice(task.get_dataset("train", seed=0), MEASURED_EXAMPLES))
    inputs = [len(ex.get("inputs", ())) for ex in examples]
    return {
        "inputs": sum(inputs) / len(examples),
        "targets": sum(len(ex["targets"]) for ex in examples) / len(examples),
    }


def measured_lengths(entry: dict[str, Any]) -> dict[str, float]:
    """Mean input and target lengths (tokens, with EOS) of the entry's first pre-training
    examples, measured on the examples themselves."""
    return _measure(
        entry["objective"],
        tuple(sorted(entry["params"].items())),
        entry["input_length"],
        entry["corpus"][0],
    )


def pretrain_finetune_runs(
    ctx: Context,
    arm: str,
    entry: dict[str, Any] | None,
    tasks: list[str],
    labels: dict[str, Any],
) -> list[RunSpec]:
    """``pretrain_ARM`` (``budget`` steps on the entry's task, no dropout as T5.1.1, targets as
    long as the objective needs) and ``finetune_ARM`` (``budget * finetune_fraction`` steps on
    the downstream mixture, starting from it); ``entry`` None: the fine-tune alone, from scratch.
    """
    finetune_steps = ctx.steps(float(ctx.axis("finetune_fraction")[0]), arm=f"finetune_{arm}")
    finetune = ctx.train_config(finetune_steps, finetune_mixture_name(ctx), tasks)
    if entry is None:
        return [RunSpec(f"finetune_{arm}", finetune, labels={**labels, "stage": "finetune"})]
    lengths = sequence_lengths(entry)
    pretrain = ctx.train_config(
        ctx.steps(arm=f"pretrain_{arm}"),
        entry["name"],
        tasks[:1],  # one cheap evaluation at the end (a pre-trained model is near chance)
        data={"input_length": lengths["inputs"], "target_length": lengths["targets"]},
        model={"dropout_rate": 0.0},
        eval={"every": ctx.budget},
    )
    return [
        RunSpec(f"pretrain_{arm}", pretrain, labels={**labels, "stage": "pretrain"}),
        RunSpec(
            f"finetune_{arm}",
            finetune,
            init_from=f"pretrain_{arm}",
            labels={**labels, "stage": "finetune"},
        ),
    ]


def downstream_tasks(ctx: Context) -> list[str]:
    """The fine-tuning tasks: those the settings' families name, else ``DOWNSTREAM_TASKS``
    (three tasks of three families: one needs the corpus' facts, two do not)."""
    return ctx.tasks() if ctx.settings.families else list(DOWNSTREAM_TASKS)


def finetune_mixture_name(ctx: Context) -> str:
    """The downstream mixture's name, one per experiment (task files share one registry)."""
    return f"{ctx.experiment.name.replace('-', '_')}_finetune"


def finetune_mixture(ctx: Context, tasks: list[str]) -> dict[str, Any]:
    return {
        "name": finetune_mixture_name(ctx),
        "tasks": tasks,
        "strategy": "proportional",
        "cap": 2000,
    }


def arm_scores(outcomes: dict[str, Outcome], arm: str, tasks: list[str]) -> list[float | None]:
    """The fine-tune's best score per task (None where it did not finish)."""
    outcome = outcomes.get(f"finetune_{arm}")
    if outcome is None or outcome.status != "done":
        return [None] * len(tasks)
    return [outcome.best(t) for t in tasks]


def objective_param(entry: dict[str, Any] | None, key: str) -> Any:
    """An objective's parameter as the entry sets it, else its factory's default (None if the
    objective has no such parameter)."""
    if entry is None:
        return None
    if key in entry["params"]:
        return entry["params"][key]
    parameter = inspect.signature(OBJECTIVES[entry["objective"]]).parameters.get(key)
    return None if parameter is None else parameter.default


def seconds_per_step(outcome: Outcome | None) -> float | None:
    if outcome is None or outcome.seconds is None or not outcome.report.get("step"):
        return None
    return outcome.seconds / outcome.report["step"]


class Objectives(Experiment):
    name = "objectives"
    description = "T5's unsupervised objectives, corruption rates and span lengths, fine-tuned."
    grid = {
        "objectives": [
            "bert_style",
            "mass_style",
            "prefix_lm",
            "deshuffling",
            "iid_denoising",
            "drop_tokens",
            "span_corruption",
        ],
        "corruption_rates": [0.10, 0.15, 0.25, 0.50],  # span corruption, mean span 3
        "span_lengths": [2, 3, 5, 10],  # span corruption, 15%
        "input_length": [128],
        "finetune_fraction": [0.5],
        "baseline": [True],  # the fine-tune from scratch
    }
    default_budget = 200

    def arms(self, ctx: Context) -> dict[str, tuple[str, dict[str, Any]]]:
        """Arm name -> (objective, params); an arm that another axis already has (span
        corruption at 15% and mean span 3) appears once."""
        arms: dict[str, tuple[str, dict[str, Any]]] = {}

        def add(name: str, objective: str, params: dict[str, Any]) -> None:
            if (objective, params) not in arms.values():
                arms[name] = (objective, params)

        for objective in ctx.axis("objectives"):
            add(objective, objective, {})
        for rate in ctx.axis("corruption_rates"):
            params = {"noise_density": float(rate), "mean_noise_span_length": float(BASE_SPAN)}
            if rate == BASE_RATE:
                params = {}
            add(f"span_corruption_rate{round(rate * 100)}", "span_corruption", params)
        for span in ctx.axis("span_lengths"):
            params = {"noise_density": BASE_RATE, "mean_noise_span_length": float(span)}
            if span == BASE_SPAN:
                params = {}
            add(f"span_corruption_span{span:g}", "span_corruption", params)
        return arms

    def entries(self, ctx: Context) -> dict[str, dict[str, Any]]:
        corpus = default_corpus()
        length = int(ctx.axis("input_length")[0])
        return {
            arm: pretraining_entry(f"objective_{arm}", objective, params, length, corpus)
            for arm, (objective, params) in self.arms(ctx).items()
        }

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = downstream_tasks(ctx)
        entries = self.entries(ctx)
        ctx.write_task_file(
            {"pretraining": list(entries.values()), "mixtures": [finetune_mixture(ctx, tasks)]}
        )
        runs = []
        if ctx.axis("baseline")[0]:
            runs += pretrain_finetune_runs(ctx, NO_PRETRAINING, None, tasks, {"arm": "none"})
        for arm, entry in entries.items():
            runs += pretrain_finetune_runs(ctx, arm, entry, tasks, {"arm": arm})
        return runs

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        tasks = downstream_tasks(ctx)
        entries = self.entries(ctx)
        arms: list[tuple[str, dict[str, Any] | None]] = list(entries.items())
        if ctx.axis("baseline")[0]:
            arms.insert(0, (NO_PRETRAINING, None))
        rows = []
        for arm, entry in arms:
            scores = arm_scores(outcomes, arm, tasks)
            lengths = {} if entry is None else measured_lengths(entry)
            pretrain = outcomes.get(f"pretrain_{arm}")
            rows.append(
                [
                    arm,
                    objective_param(entry, "noise_density"),
                    objective_param(entry, "mean_noise_span_length"),
                    lengths.get("targets"),
                    seconds_per_step(pretrain),
                    None if pretrain is None else pretrain.final_loss,
                    mean(scores),
                    *scores,
                ]
            )
        steps = ctx.steps(arm="pretrain")
        finetune = ctx.steps(float(ctx.axis("finetune_fraction")[0]))
        return Summary(
            columns=[
                "arm",
                "corruption",
                "mean span",
                "target length",
                "pretrain s/step",
                "pretrain loss",
                "average",
                *tasks,
            ],
            rows=rows,
            notes=[
                f"Each arm: {steps} pre-training steps on the default corpus (inputs "
                f"{ctx.axis('input_length')[0]} tokens), then {finetune} fine-tuning steps on "
                f"{', '.join(tasks)} (one proportional mixture); seed {ctx.settings.seed}; each "
                f"task at its best of {ctx.settings.evals} evaluations. Target length: mean "
                f"tokens (with EOS) of {MEASURED_EXAMPLES} pre-training examples. Pre-training "
                "losses of different objectives are not comparable (different targets).",
                FINDING,
            ],
        )

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        labels = [row[0] for row in summary.rows]
        return [
            bar_plot(
                out_dir / "objectives.png",
                labels,
                {"average": [row[6] for row in summary.rows]},
                title="Objectives: mean downstream score after fine-tuning",
                ylabel="score (best per task)",
            )
        ]
