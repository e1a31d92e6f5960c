"""The demo: the whole taskmix path on the embedded default data, sized for a 2-core CPU.

1. generate the default data (a synthetic world, a corpus, 26 tasks);
2. train a SentencePiece tokenizer on it;
3. pre-train a small T5 on span corruption mixed with the default multi-task mixture (ExT5-style);
4. fine-tune it on a task left out of that mixture (the translation-like task);
5. evaluate every task on the validation split, print a table with the chance level beside
   each score (measured on the same validation examples), and write ``report.json`` and
   ``learning_curves.png``.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any

from taskmix.catalog import load_task_files
from taskmix.data.registry import TaskRegistry
from taskmix.data.task import Task
from taskmix.data.tokenizer import train_sentencepiece
from taskmix.default_data import PRETRAIN_MIXTURE, ensure_data
from taskmix.default_data.vocab import VOCAB_SIZE, training_texts
from taskmix.evaluation import task_evaluator
from taskmix.evaluation.evaluator import evaluate_task
from taskmix.files import atomic_write_text
from taskmix.metrics.chance import chance_scores
from taskmix.tables import print_table
from taskmix.training.config import parse_config
from taskmix.training.runs import load_run
from taskmix.training.trainer import train

HELD_OUT_TASK = "translate_en_zarnic"
EVAL_SPLIT = "validation"


@dataclass
class DemoSize:
    """Steps and shapes; ``full`` is what the README's demo runs, ``quick`` is for tests."""

    pretrain_steps: int
    finetune_steps: int
    batch_size: int
    input_length: int
    target_length: int
    eval_examples: int
    preset: str = "tiny"


SIZES = {
    "full": DemoSize(
        pretrain_steps=900,
        finetune_steps=200,
        batch_size=32,
        input_length=128,
        target_length=32,
        eval_examples=100,
    ),
    "quick": DemoSize(
        pretrain_steps=6,
        finetune_steps=3,
        batch_size=4,
        input_length=128,
        target_length=32,
        eval_examples=4,
    ),
}


def _config(
    size: DemoSize,
    *,
    steps: int,
    mixture: str,
    vocabulary: str,
    seed: int,
    init_from: str | None = None,
    finetune: bool = False,
    eval_tasks=None,
) -> dict[str, Any]:
    return {
        "seed": seed,
        "steps": steps,
        "vocabulary": vocabulary,
        "log_every": 10,
        "model": {
            "preset": size.preset,
            "version": "1.1",
            "init_from": init_from,
            "dropout_rate": 0.1 if finetune else 0.0,  # T5.1.1: no dropout in pre-training
        },
        "data": {
            "mixture": mixture,
            "input_length": size.input_length,
            "target_length": size.target_length,
            "batch_size": size.batch_size,
        },
        "optimizer": (
            {"name": "adafactor", "lr": 1e-3, "schedule": "constant", "warmup_steps": 0}
            if finetune
            else {
                "name": "adafactor",
                "lr": 0.01,
                "schedule": "inverse_sqrt",
                "warmup_steps": 10_000,
            }
        ),
        "eval": {
            "every": max(steps // 3, 1),
            "tasks": eval_tasks,
            "max_examples": min(size.eval_examples, 50),
            "max_decode_length": size.target_length,
        },
        "checkpoint": {"every": max(steps // 3, 1), "keep_last": 1},
    }


def run_demo(
    out: Path, *, size: str = "full", seed: int = 0, progress: bool = True
) -> dict[str, Any]:
    shape = SIZES[size]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings: dict[str, float] = {}
    start = time.perf_counter()

    def step(name: str, message: str) -> None:
        print(f"\n== {message}", flush=True)
        timings[name] = time.perf_counter()

    step("data", "1/5 default data")
    root = ensure_data(0)
    load_task_files()  # the default tasks
    in_mixture = [t for t in TaskRegistry if t.metadata.get("in_mixture")]
    print(f"{len(list(TaskRegistry))} tasks in {root}; {len(in_mixture)} in the default mixture")

    step("tokenizer", "2/5 tokenizer")
    spm = train_sentencepiece(
        training_texts(root), out / "tokenizer" / "spm", VOCAB_SIZE, seed=seed
    )
    print(f"SentencePiece model: {spm}")

    step("pretrain", "3/5 pre-training: span corruption + default mixture")
    pre_config = parse_config(
        _config(
            shape,
            steps=shape.pretrain_steps,
            mixture=PRETRAIN_MIXTURE,
            vocabulary=str(spm),
            seed=seed,
            eval_tasks=[t.name for t in in_mixture],
        ),
        "demo pre-training config",
    )
    pre_state = train(
        pre_config, out / "pretrain", progress=progress, evaluate=task_evaluator(pre_config)
    )

    step("finetune", f"4/5 fine-tuning on {HELD_OUT_TASK} (not in the pre-training mixture)")
    ft_config = parse_config(
        _config(
            shape,
            steps=shape.finetune_steps,
            mixture=HELD_OUT_TASK,
            vocabulary=str(spm),
            seed=seed,
            init_from=str(out / "pretrain"),
            finetune=True,
            eval_tasks=[HELD_OUT_TASK],
        ),
        "demo fine-tuning config",
    )
    ft_state = train(
        ft_config, out / "finetune", progress=progress, evaluate=task_evaluator(ft_config)
    )

    step("evaluate", f"5/5 evaluation ({EVAL_SPLIT} split)")
    pre_model, vocabulary, _ = load_run(out / "pretrain")
    ft_model, _, _ = load_run(out / "finetune")
    rows, report_tasks = [], {}
    for task in [*in_mixture, TaskRegistry.get(HELD_OUT_TASK)]:
        model = ft_model if task.name == HELD_OUT_TASK else pre_model
        scores = evaluate_task(
            model,
            task,
            vocabulary=vocabulary,
            split=EVAL_SPLIT,
            max_examples=shape.eval_examples,
            max_decode_length=shape.target_length,
            input_length=shape.input_length,
        )
        chance = chance_level(task, EVAL_SPLIT, shape.eval_examples)
        metric = task.metric_names[0]
        report_tasks[task.name] = {
            "family": task.family,
            "metrics": scores,
            "chance": chance,
            "main_metric": metric,
        }
        rows.append(
            [task.name, task.family, metric, scores[metric], chance.get(metric, float("nan"))]
        )
    timings["end"] = time.perf_counter()

    print()
    print_table(["task", "family", "metric", "score", "chance"], rows)
    above = sum(1 for r in rows if r[3] > r[4] + 10)
    print(f"\n{above} of {len(rows)} tasks score more than 10 points above chance.")

    names = list(timings)
    seconds = {n: round(timings[names[i + 1]] - timings[n], 1) for i, n in enumerate(names[:-1])}
    report = {
        "tasks": report_tasks,
        "above_chance": {"margin": 10, "count": above, "of": len(rows), "split": EVAL_SPLIT},
        "seconds": {**seconds, "total": round(timings["end"] - start, 1)},
        "pretrain": {
            "best": pre_state.best,  # best score per task/metric over the evaluations (as T5 reports)
            "steps": pre_state.step,
            "mixture": pre_config.data.mixture,
            "run": str(out / "pretrain"),
        },
        "finetune": {"steps": ft_state.step, "task": HELD_OUT_TASK, "run": str(out / "finetune")},
    }
    atomic_write_text(out / "report.json", json.dumps(report, indent=2))
    plot_learning_curves(out / "pretrain", out / "finetune", out / "learning_curves.png")
    print(
        f"wrote {out / 'report.json'} and {out / 'learning_curves.png'} "
        f"({report['seconds']['total']:.0f} s in all)"
    )
    return report


def chance_level(task: Task, split: str, max_examples: int) -> dict[str, float]:
    """What always answering the most frequent training target scores on the very examples
    the model is scored on (the first ``max_examples`` of ``split``), so the two compare."""

    def targets(name: str, limit: int | None = None) -> list[str]:
        examples = task.get_dataset(name, pretokenized=True)
        return [str(ex["targets"]) for ex in islice(examples, limit)]

    return chance_scores(
        task.metric_names,
        targets("train"),
        targets(split, max_examples),
        positive_label=task.metadata.get("positive_label"),
    )


def _read_log(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line]


def plot_learning_curves(pretrain: Path, finetune: Path, path: Path) -> None:
    """Training loss of both stages and the average validation score over steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for run, label in ((pretrain, "pre-training"), (finetune, "fine-tuning")):
        records = _read_log(run)
        steps = [r["step"] for r in records if "loss" in r]
        losses = [r["loss"] for r in records if "loss" in r]
        axes[0].plot(steps, _smooth(losses), label=label)
        evals = [r for r in records if "eval" in r]
        axes[1].plot(
            [r["step"] for r in evals], [r["average"] for r in evals], marker="o", label=label
        )
    axes[0].set(title="training loss (smoothed)", xlabel="step", ylabel="loss", yscale="log")
    axes[1].set(title="average validation score (x100)", xlabel="step", ylabel="score")
    for ax in axes:
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    tmp.replace(path)


def _smooth(values: list[float], alpha: float = 0.1) -> list[float]:
    out, current = [], None
    for v in values:
        current = v if current is None else (1 - alpha) * current + alpha * v
        out.append(current)
    return out
