"""ExT5's co-training transfer matrix (ExT5 §3.3, Fig. 2): which task families help each other?

For every family j one run trains on j alone; for every unordered pair {i, j} one run trains on
i + j, the two families mixed equally and the tasks of each family examples-proportionally (a
nested mixture: an ``equal`` mixture of two proportional family mixtures). The pair run serves
both cells (i, j) and (j, i): the co-trained model is scored on both families. Every run has the
same number of steps, so in a pair run each family gets about half the examples it gets alone.

A family's score is the mean over its tasks of each task's best evaluation. Cell (i, j) is the
change of family j's score when co-trained with family i: ``score_j(i + j) - score_j(j alone)``
in points and relative to ``score_j(j alone)`` in percent (ExT5 Fig. 2 shows the relative change;
the heatmap does too, a second one shows points). The diagonal is 0 by definition (j + j is j
alone). The last column, the mean over j != i of row i, is what ExT5's "best-effort" mixture is
chosen from: the families whose co-training helped the others on average.

ExT5 found transfer mixed and negative transfer common (summarization, for one, hurt most
families), which is why they then asked whether a curated mixture beats using every task (the
``selection`` experiment: it does not).

Besides ``results.json``, the experiment writes ``transfer_matrix.json`` and
``transfer_matrix.csv`` (``selection`` reads the JSON's ``best_effort`` families).
"""

from __future__ import annotations

import csv
import io
import json
import math
from itertools import combinations
from pathlib import Path
from typing import Any

from taskmix.default_data import DEFAULT_CAP
from taskmix.files import atomic_write_text
from taskmix.recipes.experiments.base import Context, Experiment, Outcome, RunSpec, Summary, mean
from taskmix.recipes.experiments.results import heatmap

FINDING = (
    "ExT5 (Fig. 2): transfer between families is mixed and negative transfer is common "
    "(e.g. co-training with summarization hurts most families); few pairs help clearly."
)
MATRIX_JSON = "transfer_matrix.json"
MATRIX_CSV = "transfer_matrix.csv"


def alone_run(family: str) -> str:
    return f"alone_{family}"


def pair_run(a: str, b: str) -> str:
    """The run co-training two families (one name for both orders)."""
    first, second = sorted((a, b))
    return f"pair_{first}__{second}"


def family_score(outcome: Outcome | None, tasks: list[str]) -> float | None:
    """Mean over the family's tasks of each task's best score (None if the run did not finish
    or scored none of them)."""
    if outcome is None or outcome.status != "done":
        return None
    return mean([outcome.best(t) for t in tasks])


def transfer_matrix(
    families: list[str], tasks: dict[str, list[str]], outcomes: dict[str, Outcome]
) -> dict[str, Any]:
    """The matrix from the runs' outcomes: ``alone[j]``, and per row i (co-trained with) and
    column j (scored) ``co_trained``, ``points`` (difference) and ``relative`` (% of alone);
    ``row_mean_points``/``row_mean_relative`` over j != i; ``best_effort``: the families
    whose row mean in points is positive; ``ranked``: all families by that mean, best first."""
    alone = {j: family_score(outcomes.get(alone_run(j)), tasks[j]) for j in families}
    co_trained: list[list[float | None]] = []
    points: list[list[float | None]] = []
    relative: list[list[float | None]] = []
    for i in families:
        co_row, pt_row, rel_row = [], [], []
        for j in families:
            score = alone[j] if i == j else family_score(outcomes.get(pair_run(i, j)), tasks[j])
            diff = None if score is None or alone[j] is None else score - alone[j]
            co_row.append(score)
            pt_row.append(diff)
            rel_row.append(None if diff is None or not alone[j] else 100.0 * diff / alone[j])
        co_trained.append(co_row)
        points.append(pt_row)
        relative.append(rel_row)

    def off_diagonal_mean(matrix: list[list[float | None]], r: int) -> float | None:
        return mean([v for c, v in enumerate(matrix[r]) if c != r])

    row_points = [off_diagonal_mean(points, r) for r in range(len(families))]
    row_relative = [off_diagonal_mean(relative, r) for r in range(len(families))]
    ranks = [math.inf if v is None else -v for v in row_points]
    return {
        "families": families,
        "rows": "co-trained with (i)",
        "columns": "scored family (j)",
        "alone": alone,
        "co_trained": co_trained,
        "points": points,
        "relative": relative,
        "row_mean_points": row_points,
        "row_mean_relative": row_relative,
        "best_effort": [
            f for f, v in zip(families, row_points, strict=True) if v is not None and v > 0
        ],
        # every family, the most helpful co-training partner first (unscored ones last)
        "ranked": [f for _, f in sorted(zip(ranks, families, strict=True), key=lambda p: p[0])],
    }


def matrix_csv(matrix: dict[str, Any]) -> str:
    """One line per cell: i, j, j's score alone, co-trained, the points and relative change."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["co_trained_with", "scored", "alone", "co_trained", "points", "relative_pct"])
    families = matrix["families"]
    for r, i in enumerate(families):
        for c, j in enumerate(families):
            writer.writerow(
                [
                    i,
                    j,
                    *(
                        "" if v is None else f"{v:.4f}"
                        for v in (
                            matrix["alone"][j],
                            matrix["co_trained"][r][c],
                            matrix["points"][r][c],
                            matrix["relative"][r][c],
                        )
                    ),
                ]
            )
    return out.getvalue()


class TransferMatrix(Experiment):
    name = "transfer-matrix"
    description = "ExT5's co-training transfer matrix: each family alone and every pair of them."
    grid = {"cap": [DEFAULT_CAP]}  # the examples-proportional cap within a family
    default_budget = 300

    def family_tasks(self, ctx: Context) -> dict[str, list[str]]:
        return {f: ctx.tasks(f) for f in ctx.families()}

    def runs(self, ctx: Context) -> list[RunSpec]:
        tasks = self.family_tasks(ctx)
        families = list(tasks)
        cap = int(ctx.axis("cap")[0])
        pairs = list(combinations(families, 2))
        ctx.write_task_file(
            {
                "mixtures": [
                    {"name": f"tm_{f}", "strategy": "proportional", "cap": cap, "tasks": tasks[f]}
                    for f in families
                ]
                + [
                    {
                        "name": f"tm_{pair_run(a, b)}",
                        "strategy": "equal",
                        "tasks": [f"tm_{a}", f"tm_{b}"],
                    }
                    for a, b in pairs
                ]
            }
        )
        steps = ctx.steps(arm="each run")
        runs = [
            RunSpec(
                alone_run(f),
                ctx.train_config(steps, f"tm_{f}", tasks[f]),
                labels={"families": [f]},
            )
            for f in families
        ]
        runs += [
            RunSpec(
                pair_run(a, b),
                ctx.train_config(steps, f"tm_{pair_run(a, b)}", tasks[a] + tasks[b]),
                labels={"families": [a, b]},
            )
            for a, b in pairs
        ]
        return runs

    def summarize(self, ctx: Context, outcomes: dict[str, Outcome]) -> Summary:
        tasks = self.family_tasks(ctx)
        families = list(tasks)
        matrix = transfer_matrix(families, tasks, outcomes)
        matrix["steps"] = ctx.budget
        atomic_write_text(ctx.out / MATRIX_JSON, json.dumps(matrix, indent=2) + "\n")
        atomic_write_text(ctx.out / MATRIX_CSV, matrix_csv(matrix))
        rows: list[list[Any]] = [["(j alone: score)", *matrix["alone"].values(), None, None]]
        for r, i in enumerate(families):
            rows.append(
                [
                    f"+ {i}",
                    *matrix["points"][r],
                    matrix["row_mean_points"][r],
                    matrix["row_mean_relative"][r],
                ]
            )
        runs = len(families) + len(families) * (len(families) - 1) // 2
        return Summary(
            columns=["co-trained with i \\ scored j", *families, "mean pts", "mean %"],
            rows=rows,
            notes=[
                f"{runs} runs ({len(families)} alone + {runs - len(families)} pairs), "
                f"{ctx.budget} steps each, seed {ctx.settings.seed}; a family's score is the mean "
                f"of its tasks' best of {ctx.settings.evals} evaluations.",
                "Cells: points change of j's score when co-trained with i (diagonal 0); "
                "'mean pts'/'mean %' average row i over j != i (relative % in "
                f"{MATRIX_JSON}, {MATRIX_CSV} and the heatmap).",
                "Best-effort families (row mean > 0): "
                + (", ".join(matrix["best_effort"]) or "none"),
                FINDING,
            ],
            data={"matrix": matrix},
        )

    def plot(self, ctx: Context, summary: Summary, out_dir: Path) -> list[Path]:
        matrix = summary.data["matrix"]
        families = matrix["families"]
        common = {"xlabel": "scored family j", "ylabel": "co-trained with family i"}
        return [
            heatmap(
                out_dir / "transfer_matrix.png",
                matrix["relative"],
                families,
                families,
                title="Transfer: change of j's score (%)",
                **common,
            ),
            heatmap(
                out_dir / "transfer_matrix_points.png",
                matrix["points"],
                families,
                families,
                title="Transfer: change of j's score (points)",
                **common,
            ),
        ]
