"""Mixing strategies (T5 §3.5.2, Table 11): how often each task is sampled in multi-task training.

One multi-task run per strategy on the same tasks, the same steps and the same seed:
examples-proportional mixing with several caps K, temperature-scaled mixing with T in
{1, 2, 8} (cap ``temperature_cap``, as T5 uses a large K with temperature), and equal mixing.
The table gives each task family's mean score (each task at its best evaluation) and the mean
over tasks. T5 found examples-proportional mixing with a well-chosen K best among the mixing
strategies, T = 2 the best temperature, equal mixing clearly worse (low-resource tasks overfit,
high-resource ones are undertrained), and all of them below pre-train-then-fine-tune.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from taskmix.recipes.experiments.base import Context, Experiment, Outcome, RunSpec, Summary, mean
from taskmix.recipes.experiments.results import bar_plot

FINDING = (
    "T5 (Table 11): examples-proportional mixing with the right K is best; temperature T = 2 is "
    "close; equal mixing is clearly worse (small tasks overfit, large ones undertrained)."
)


class Mixing(Experiment):
    name = "mixing"
    description = "T5's mixing strategies: examples-proportional (several K), temperature, equal."
    grid = {"cap": [64, 256, 1024], "temperature": [1, 2, 8], "temperature_cap": [4096]}
    default_budget = 600

    def arms(self, ctx: Context) -> dict[str, dict[str, Any]]:
        """Run name -> the mixture's strategy settings."""
        arms: dict[str, dict[str, Any]] = {
            f"proportional_K{k}": {"strategy": "proportional", "cap": int(k)}
            for k in ctx.axis("cap")
        }
        cap = int(ctx.axis("temperature_cap")[0])
        for t in ctx.axis("temperature"):
            arms[f"temperature_T{t:g}"] = {
                "strategy": "temperature",
                "temperature": float(t),
                "cap": cap,
            }
        arms["equal"] = {"strategy": "equal"}
        return arms

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = ctx.tasks()
        arms = self.arms(ctx)
        ctx.write_task_file(
            {
                "mixtures": [
                    {"name": f"mixing_{name}", "tasks": tasks, **mix} for name, mix in arms.items()
                ]
            }
        )
        steps = ctx.steps(arm="each strategy")
        return [
            RunSpec(
                name, ctx.train_config(steps, f"mixing_{name}", tasks), labels={"strategy": name}
            )
            for name in arms
        ]

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        families = ctx.families()
        rows = []
        for name, outcome in outcomes.items():
            by_family = [mean([outcome.best(t) for t in ctx.tasks(family)]) for family in families]
            rows.append([name, mean([outcome.best(t) for t in ctx.tasks()]), *by_family])
        return Summary(
            columns=["strategy", "average", *families],
            rows=rows,
            notes=[
                f"{len(ctx.tasks())} tasks, {ctx.budget} steps per strategy, seed "
                f"{ctx.settings.seed}; each task at its best of {ctx.settings.evals} evaluations.",
                FINDING,
            ],
        )

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        labels = [row[0] for row in summary.rows]
        return [
            bar_plot(
                out_dir / "mixing.png",
                labels,
                {"average": [row[1] for row in summary.rows]},
                title="Mixing strategies: mean task score",
                ylabel="score (best per task)",
            )
        ]
